"""Short step lists, in the text form ``STATEFUL_STEPS`` takes, each the smallest reproduction found of
one way the library broke an invariant (first seen in seeded runs, then cut down by hand). The
scenario tests replay every one of them on one simulated cluster per engine: they keep those bugs
found, whatever the seed of the day draws.
"""

from __future__ import annotations

SCENARIOS: dict[str, dict[str, str]] = {
    "postgresql": {
        # a second connection of the same user with its own TLS and settings fails over as the first
        # one (I1), and the cluster's own sessions are plain text while it requires TLS (I5)
        "settings_and_tls_after_failover": "open c1 alpha_plain; open c2 alpha_tls; fault failover",
        # the cluster's background sessions, opened while only a plain-text connection used it, stay
        # plain text once a connection that requires TLS joins (I5)
        "background_tls_follows_a_stronger_identity": (
            "open c1 alpha_plain; await_background; open c2 alpha_tls"
        ),
        # set_read_only moves a connection to a reader with the first connection's settings (I1)
        "settings_on_reader": "open c1 alpha_plain; open c2 alpha_tls; read_only c2 on",
        # set_read_only(False) on a session that stayed on the writer (no reader was up) opens a new
        # writer connection and drops the one it had without closing it (I4)
        "read_only_without_readers_leaks": "open c1 beta_tls; read_only c1 on readers=down; read_only c1 off",
        # set_read_only(False) with a rotated static password: the error must be a documented one (I8)
        "read_only_off_with_rotated_password": (
            "open c1 beta_tls ro=1; rotate st_beta; fault reset_writer; read_only c1 off"
        ),
        # a Secrets Manager identity logs in as another secret's user once that one has a pool (I1)
        "secret_identity_at_connect": "pool p1 admin_plain; open c1 report_tls",
        # after a rotation a connection with the new static password fails over with the old one (I7);
        # c1, still open with the old password, may fail (it gives up after 2 s)
        "rotated_static_password": (
            "open c1 beta_tls timeout=2; rotate st_beta; open c2 beta_tls; fault failover"
        ),
        # a pool still open with a rotated static password (its idle connection never fails over, so
        # its identity stays): a connection with current credentials of another user cannot fail
        # over, the writer search keeps borrowing the refused login (I7)
        "stale_pool_identity_blocks_failover": (
            "pool p1 alpha_tls; rotate st_alpha; fault failover; open c2 beta_tls; "
            "unit c2 block fault=reset@1"
        ),
        # conn.transaction() on a connection closed while idle: a bare driver error, no failover (I8)
        "transaction_on_broken_idle_connection": "open c1 beta_tls; idle_break c1 transaction",
        # a retry inside a transaction block: the block reports success with one row of three (I2)
        "inner_retry_commits_partial_work": "open c1 beta_tls; unit c1 block inner=retry fault=reset@1",
        "inner_attempts_commits_partial_work": (
            "open c1 beta_tls; unit c1 manual inner=attempts fault=failover@2"
        ),
        # the application swallows the failover error and rolls back: what ran after it stays (I2)
        "swallowed_failover_then_rollback": (
            "open c1 beta_tls; unit c1 block inner=swallow end=abort fault=reset@1"
        ),
        # close() while the connection fails over: the new physical connection is left open (I4)
        "close_mid_failover_leaks": "open c1 beta_tls; close_mid_failover c2 beta_tls outcome=completes",
        # close() while the failover times out: the cluster is released twice (I6)
        "close_mid_failover_releases_twice": (
            "open c1 beta_tls; close_mid_failover c2 beta_tls outcome=times_out"
        ),
    },
    "mysql": {
        # autocommit of the first connection after a failover (I1); rollback() then keeps the rows (I2)
        "autocommit_after_failover": (
            "open c1 alpha_auto; open c2 alpha_manual; fault failover; unit c2 implicit end=abort"
        ),
        "secret_identity_at_connect": "open c1 admin_auto; open c2 report_manual",
        "read_only_without_readers_leaks": (
            "open c1 beta_manual; read_only c1 on readers=down; read_only c1 off"
        ),
        "read_only_off_with_rotated_password": (
            "open c1 beta_manual ro=1; rotate st_beta; fault reset_writer; read_only c1 off"
        ),
        "rotated_static_password": (
            "open c1 beta_manual timeout=2; rotate st_beta; open c2 beta_manual; fault failover"
        ),
        "inner_retry_commits_partial_work": "open c1 beta_manual; unit c1 begin inner=retry fault=reset@1",
        # the same without begin(): with autocommit off every statement is in a transaction (I2)
        "implicit_transaction_commits_partial_work": (
            "open c1 beta_manual; unit c1 implicit inner=retry fault=reset@1"
        ),
        "swallowed_failover_then_commit": (
            "open c1 beta_manual; unit c1 begin inner=swallow fault=switchover@2"
        ),
        "close_mid_failover_leaks": (
            "open c1 beta_manual; close_mid_failover c2 beta_manual outcome=completes"
        ),
        "close_mid_failover_releases_twice": (
            "open c1 beta_manual; close_mid_failover c2 beta_manual outcome=times_out"
        ),
    },
}
