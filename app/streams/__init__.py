"""Serving: loaded models, warmed states per series and model, and live streams."""
