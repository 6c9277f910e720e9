"""ClientApp: local training; fedsecure_mod turns the reply into a SecAgg input."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedsecure.fl.client import train_local
from fedsecure.fl.model import model_to_vector, vector_to_model
from fedsecure.runtime.flower import fedsecure_mod
from fedsecure_app.task import new_model, node_data

app = ClientApp(mods=[fedsecure_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = node_data(int(context.node_config["partition-id"]),
                     int(context.node_config["num-partitions"]))
    update = train_local(model, x, y, epochs=int(context.run_config.get("local-epochs", 1)),
                         batch_size=32, lr=float(context.run_config.get("lr", 0.1)))
    vector_to_model(model_to_vector(model) + update.delta, model)
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()),
                               "metrics": MetricRecord({"num-examples": update.n_samples})}),
                   reply_to=msg)
