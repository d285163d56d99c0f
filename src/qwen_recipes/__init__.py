"""qwen-recipes: fine-tuning recipes for small Qwen models that say what they cost."""

__version__ = "0.1.0"
