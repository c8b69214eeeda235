"""Models: the detector and the scene-graph model (detector + relation head), built by ``build_model``."""
from .build import build_model, model_vocabulary, relation_mode
from .scene_graph import SceneGraphModel

__all__ = ["SceneGraphModel", "build_model", "model_vocabulary", "relation_mode"]
