"""Money budgets, ``max_parallel`` and budget alerts on consumers and groups (SPEC §10).

    periods.py    UTC calendar periods (day, week from Monday, month, total)
    history.py    spend rebuilt from the usage records
    enforcer.py   ``Budgets``: reserve-then-settle admission, run by the gateway
    alerts.py     ``Alerts``: one webhook POST per threshold and period, across replicas

The gateway calls ``Budgets.admit`` after the request plugins (key-auth has named the
consumer) and ``Budgets.release`` when the call ends; no plugin is needed.
``Budgets.consumer_spend`` and ``Budgets.spend`` answer current spend for the admin API.
"""
