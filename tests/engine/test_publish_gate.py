import numpy as np

from desktop.engine.learning.publish_gate import PublishGate, held_back_signature


def test_gate_compares_with_the_model_in_use_on_todays_held_back_labels():
    gate = PublishGate(tolerance=0.02)
    first = held_back_signature([("a", np.array([[1.0, 2.0, 0.0]]))])
    gate.published(first, 0.95)  # scored 0.95 on an easy, small held-back set
    # Hard labels join the held-back set: the model in use now scores 0.80 on it.
    harder = held_back_signature([("a", np.array([[1.0, 2.0, 0.0], [5.0, 5.0, 1.0]]))])
    assert harder != first
    measured = []
    in_use = gate.score_in_use(harder, lambda: measured.append(1) or 0.80)
    assert in_use == 0.80 and measured == [1]
    assert gate.allows(0.85, in_use)  # the best-ever rule (0.95) would have refused this forever
    assert not gate.allows(0.77, in_use)
    gate.published(harder, 0.85)
    assert gate.score_in_use(harder, lambda: 0.0) == 0.85  # same labels: not measured again


def test_gate_allows_when_there_is_nothing_to_compare():
    gate = PublishGate()
    assert gate.allows(None, 0.9) and gate.allows(0.5, None) and gate.allows(0.5, float("nan"))
