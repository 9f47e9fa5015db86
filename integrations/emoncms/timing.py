"""How a batch tells EmonCms its times, so that every row lands at its own second.

EmonCms (``InputMethods::bulk``) stores each entry at ``time_ref + (int) t`` where

* ``sentat=S``: ``time_ref = time() - S`` (PHP's ``time()`` TRUNCATES the server clock),
* ``time=T``:   ``time_ref = T``.

With absolute entry times and ``time=0`` the stored time is the row's own second,
whatever the server clock, the moment of sending or the latency: a batch sent
after an outage, at shutdown or at any clock fraction, and the same batch resent,
all land exactly where the rows were taken. That is the default
(``correct_skew: false``).

``sentat`` corrects a device clock that is off, but EmonCms's correction is
``floor(server_now) - sentat``. A rounded ``sentat`` shifts the whole batch by
-1 s whenever it is sent at a fraction >= .5 (measured against EmonCms 11.16.8: a
feed held 158 points for 159 rows after an outage). With ``sentat =
floor(device_now)`` and synced clocks the correction is 0 unless the request
crosses a whole second on its way, which shifts that batch by +1 s; no choice of
``sentat`` avoids this, since the server's arrival second is unknown when
sending. So ``correct_skew: true`` sends the truncated clock and is only for a
device whose clock is not synced at all (then a second is the lesser error).
"""

from __future__ import annotations

import math


def time_fields(correct_skew: bool, now: float) -> dict[str, str]:
    """Return the form fields telling EmonCms how to read the entries' absolute times."""
    if correct_skew:
        return {"sentat": str(math.floor(now))}  # floor like PHP's time(), never round
    return {"time": "0"}  # time_ref = 0: entry times are stored as they are
