"""The scene-graph JSON format, for a user's own dataset (docs/data.md#scene-graph-json): ``schema.json`` documents
it, ``files`` reads and checks it, ``dataset`` is ``JSONSceneGraphDataset``, ``statistics`` counts the frequency
statistics, ``writer`` writes it from any registered family's dataset, ``family`` registers it all."""
from .dataset import JSONSceneGraphDataset, select_json_split
from .family import JSONPaths, SceneGraphJSONFamily

__all__ = ["JSONPaths", "JSONSceneGraphDataset", "SceneGraphJSONFamily", "select_json_split"]
