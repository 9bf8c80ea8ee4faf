"""``python -m monai_onenet.benchmark``: Table 2 side by side with what this machine measures."""
