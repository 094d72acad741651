"""statecast: forecasting time series with recurrent networks, with durable per-stream state."""

__version__ = "0.1.0"
