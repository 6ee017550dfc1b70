"""`totes verify`: proves that the marts hold what `totesys` holds, table by table.

A step-level package (it imports only `runtime/`), so the scheduled verify Lambda ships it as
it is: `verify.verify.run_verify` is the plain function, `verify.handler` the Lambda entry point.
"""
