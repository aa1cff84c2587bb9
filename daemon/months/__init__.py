"""The month: opened when it begins, closed and signed when it ends, sent to
the hub until its receipt comes back (DESIGN.md, "Month lifecycle and
settlement"). `policy` is the pure part (its states and moves, tested as a
table), `sql` every statement on the `months` table, `room` the driver.
When a closed month goes to the hub, and what the hub's answer means, is
daemon/sendpolicy.py; daemon/hublink.py sends it."""
