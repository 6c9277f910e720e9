"""ServerApp: Flower's FedAvg over FedSecureGrid — each round's mean is computed by fedsecure."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fedsecure.fl.model import evaluate
from fedsecure.runtime.flower import FedSecureGrid
from fedsecure_app.task import CLIP, new_model, test_data

app = ServerApp()


def central_evaluation(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    model = new_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    accuracy, loss = evaluate(model, *test_data())
    return MetricRecord({"accuracy": accuracy, "loss": loss})


@app.main()
def main(grid: Grid, context: Context) -> None:
    nodes = int(context.run_config.get("min-nodes", 2))
    secure = FedSecureGrid(grid, str(context.run_config.get("protocol", "secagg")), clip=CLIP,
                           max_weight=2000, timeout_s=120)
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
                      min_available_nodes=nodes)
    result = strategy.start(grid=secure, initial_arrays=ArrayRecord(new_model().state_dict()),
                            num_rounds=int(context.run_config.get("num-server-rounds", 3)),
                            evaluate_fn=central_evaluation)
    context.state.metric_records["final"] = MetricRecord(
        result.evaluate_metrics_serverapp[max(result.evaluate_metrics_serverapp)])
