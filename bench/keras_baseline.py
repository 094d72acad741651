"""What a user would write first: a FastAPI app holding a stateful Keras model, one
`model.predict` per posted reading. Not part of the product; bench/stream.py measures it.

    STATECAST_BASELINE_MODEL=models/1/model.keras uvicorn bench.keras_baseline:app
"""

import os

import keras
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
_trained = keras.saving.load_model(os.environ["STATECAST_BASELINE_MODEL"], compile=False)
# The same layers rebuilt stateful with a batch of one: state carried between requests.
_config = _trained.get_config()
_inputs = keras.Input(batch_shape=(1, 1, _trained.input_shape[-1]))
_x = _inputs
for layer in _trained.layers:
    if isinstance(layer, keras.layers.InputLayer):
        continue
    config = layer.get_config()
    if isinstance(layer, keras.layers.RNN):
        config["stateful"] = True
    _x = layer.__class__.from_config(config)(_x)
model = keras.Model(_inputs, _x)
model.set_weights(_trained.get_weights())


class Reading(BaseModel):
    ts: str
    value: float


class Readings(BaseModel):
    readings: list[Reading]


@app.post("/readings")
def post(body: Readings) -> dict[str, list[float]]:
    outputs = []
    for reading in body.readings:
        x = np.array([[[reading.value] + [0.0] * (model.input_shape[-1] - 1)]], dtype="float32")
        outputs.append(float(model.predict(x, verbose=0)[0, -1, 0]))
    return {"forecast": outputs}
