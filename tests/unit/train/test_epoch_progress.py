"""The per-epoch progress line of a train job's log (dmlbench.train.progress), worked by hand."""

from dmlbench.train.progress import RunProgress, duration


def test_time_left_is_the_wall_time_per_epoch_done_times_the_epochs_left():
    now = [100.0]
    p = RunProgress("arcface", n_cases=2, epochs=3, clock=lambda: now[0])
    p.start()  # the first case starts training at t = 100
    now[0] = 110.0  # one epoch in 10 s: 5 epochs left -> 50 s
    line = p.epoch_line(case=7, position=0, epoch=0, train_loss=1.23456, valid_loss=0.5, accuracy=0.8125, seconds=9.96)
    assert line == (
        "arcface case 7 (1/2): epoch 1/3, loss 1.2346, val loss 0.5000, val acc 0.812, 10.0s; ~50s left in this run"
    )
    now[0] = 100.0 + 4 * 40.0  # four epochs in 160 s: 2 left -> 80 s
    for epoch in (1, 2, 0):
        p.epoch_line(7 if epoch else 3, 0 if epoch else 1, epoch, 1.0, 1.0, 0.5, 1.0)
    assert p.done == 4 and p.seconds_left() == 80.0
    assert duration(80) == "1m20s" and duration(3725) == "1h02m" and duration(4.4) == "4s"
