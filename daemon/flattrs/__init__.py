"""Flattrs and subscriptions: a flattr is recorded in the open month (once
per thing, undone while the month is open); a subscription places one
automatic flattr in each month of its span. `policy` is the pure part,
`sql` every statement on `clicks` and `subscriptions`, `room` the driver."""
