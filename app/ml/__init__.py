"""Pure numpy/Keras forecasting core: no HTTP, no database.

Training (imports TensorFlow): `training.train(spec, series, on_epoch=, should_stop=)` ->
`TrainedModel`, then `artifacts.save_artifacts(trained, directory)`.
Serving (numpy only, never TensorFlow): `forecaster.Forecaster.load(directory)`.
Nothing is imported here, so that importing the forecaster does not pull in TensorFlow.
"""
