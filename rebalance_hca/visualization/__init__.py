"""Drawing scene graphs and writing them as JSON documents (tools/demo.py, tools/visualize.py)."""
