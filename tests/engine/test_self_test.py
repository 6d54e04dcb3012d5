"""The self-test's engine steps, in this process, and how it reports a failing step."""
from desktop import self_test


def test_engine_steps_pass():
    lines = []
    steps = [step for step in self_test.STEPS if step[0] not in ("main window", "window on the display")]
    assert self_test.run(lines.append, steps) == 0, lines
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "ok   libraries", "ok   pretrained weights", "ok   demo project", "ok   train fast learner", "ok   predict",
        "ok   export masks"]
    assert lines[-1].startswith("self-test: all steps passed in")
    assert "espresso" in lines[1]


def test_a_failing_step_is_named_with_its_reason_and_its_dependants_are_skipped():
    def broken(ctx):
        raise OSError("the weight file is missing\nsecond line")

    lines = []
    steps = [("weights", broken, ()), ("classify", lambda ctx: "fine", ("weights",)),
             ("other", lambda ctx: "fine", ())]
    assert self_test.run(lines.append, steps) == 1
    assert lines[0].startswith("FAIL weights (") and lines[0].endswith("s): OSError: the weight file is missing")
    assert lines[1:3] == ["FAIL classify: skipped, needs 'weights'", "ok   other (0.00 s): fine"]
    assert lines[3].startswith("self-test: 2 of 3 steps failed in")
