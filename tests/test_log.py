"""charondebug levels map onto per-subsystem loggers as strongSwan's levels do."""

import io
import logging

from ikegate import log


def test_charondebug_levels_per_subsystem():
    stream = io.StringIO()
    log.configure({"cfg": 2, "net": -1, "ike": 0}, stream=stream)
    cfg, ike, net, knl = (log.get_logger(s) for s in ("cfg", "ike", "net", "knl"))
    cfg.log(log.CTRLMORE, "cfg level 2 shown")
    cfg.log(log.RAW, "cfg level 3 hidden")
    ike.info("ike level 1 hidden")
    ike.log(log.AUDIT, "ike level 0 shown")
    net.log(log.AUDIT, "net silenced")
    knl.info("knl default level 1 shown")
    knl.log(log.CTRLMORE, "knl level 2 hidden")
    text = stream.getvalue()
    assert "00[CFG] cfg level 2 shown" in text
    assert "00[IKE] ike level 0 shown" in text
    assert "00[KNL] knl default level 1 shown" in text
    for hidden in ("cfg level 3", "ike level 1", "net silenced", "knl level 2"):
        assert hidden not in text
    log.configure(None, stream=io.StringIO())


def test_any_sets_every_subsystem():
    log.configure({"any": 3}, stream=io.StringIO())
    assert all(log.get_logger(s).level == logging.DEBUG for s in log.SUBSYSTEMS)
    log.configure(None, stream=io.StringIO())
