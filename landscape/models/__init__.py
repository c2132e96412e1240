"""The model zoo: import each family so it registers itself."""
from . import convnet, densenet, gpt, mlp, resnet, shiftresnet, vgg  # noqa: F401
from .registry import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
