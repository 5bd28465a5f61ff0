"""Key rotation: a new key in the store, every loader on it, then the old key gone.

    plan.py      which key an environment holds, its project and owner (the admin listing),
                 the new service account's name, how long loaders need to move
    journal.py   the rotation's journal (keysentry.journal), one per environment
    steps.py     create, prove, store (with read-back), wait, retire; resume and rollback
    policies.py  [rotate] and [policies.<env>]: grace, name template, maximum key age,
                 whether a hard spend limit is required; which environments are due

Nothing here talks HTTP except through `keysentry.verify.client.ApiClient`, and the stores
only through the providers' `get` and `put` (each write read back). The journal never holds a
key: the new key's value exists in this process's memory and in the store, nowhere else.
"""
