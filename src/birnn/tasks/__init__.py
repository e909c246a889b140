"""Tasks: what a model is trained to do (loss, predictions, metrics). The trainer runs any of them."""
