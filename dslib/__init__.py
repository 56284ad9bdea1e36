"""An open, runnable reproduction of DeepSeek-Coder (Guo et al. 2024)."""

__version__ = "0.1.0"
