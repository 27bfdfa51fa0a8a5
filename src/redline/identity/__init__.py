"""The reference identity service: the Keystone v3 subset a load test touches, done fast.

It is seed 003's "minimal service" done properly: Fernet tokens, bcrypt password
hashes of a configurable cost, a SQLite store, several worker processes, expiry and
revocation honoured. It must not import the load engine.
"""
