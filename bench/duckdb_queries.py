"""The SQL baselines: DuckDB — what a team would point at the same Parquet files instead of the lake —
and DataFusion itself (PyPI's `datafusion`, `--engine datafusion`: the lake's own engine, on its defaults, with
nothing of the lake around it), running the bench's queries over the very files the lake wrote, on the same
number of threads.

`klarity-audit bench --sql` runs it after its own queries and reports both. By hand:

    python3 bench/duckdb_queries.py --dir DATA/lake/columnar/STORE_ID --threads 2 --runs 5 \\
        --day-from '2026-06-01 00:00:00' --day-to '2026-06-02 00:00:00' --principal user-00042@example.com

Prints one JSON object: {"engine": ..., "version": ..., "queries": {name: {"fastest_ms", "median_ms", "rows", "value"}}}
("value": the one cell of a one-column answer, such as a count, to check it against the lake's).
The lake's Parquet keeps requestParameters as JSON text, and each key the catalog declares also as a column
of its own (eventData."$rp:<key>"), which the lake's engine reads for the map-key query. Here that query reads
the JSON text with json_extract_string, as a team pointing DuckDB at the files without knowing those columns
would (BENCHMARKS.md also gives DuckDB reading the column). DataFusion from PyPI has no JSON functions, so it
runs the first two queries only.
"""

import argparse
import json
import statistics
import sys
import time


def duckdb_engine(args):
    try:
        import duckdb
    except ImportError:
        sys.exit("duckdb is not installed: python3 -m pip install duckdb")
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    files = args.dir.rstrip("/") + "/*.parquet"
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{files}')")
    queries = {
        "count by eventName": "SELECT eventData.eventName, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
        "one day, one principal": (
            "SELECT eventTime, eventData.eventName, eventData.UID FROM events "
            f"WHERE eventTime >= TIMESTAMP '{args.day_from}' AND eventTime < TIMESTAMP '{args.day_to}' "
            f"AND eventData.userIdentity.principalId = '{args.principal}' ORDER BY eventTime"
        ),
        "map key over all events": (
            "SELECT count(*) FROM events "
            "WHERE json_extract_string(eventData.requestParameters, '$.resourceType') = 'DynamoDB'"
        ),
    }
    return duckdb.__version__, queries, lambda sql: con.execute(sql).fetchall()


def datafusion_engine(args):
    try:
        import datafusion
    except ImportError:
        sys.exit("datafusion is not installed: python3 -m pip install datafusion")
    config = datafusion.SessionConfig().with_target_partitions(args.threads)
    ctx = datafusion.SessionContext(config)
    ctx.register_parquet("events", args.dir.rstrip("/") + "/", file_extension=".parquet")
    queries = {
        "count by eventName": (
            "SELECT events.\"eventData\"['eventName'], count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"
        ),
        "one day, one principal": (
            "SELECT \"eventTime\", events.\"eventData\"['eventName'], events.\"eventData\"['UID'] FROM events "
            f"WHERE \"eventTime\" >= TIMESTAMP '{args.day_from}' AND \"eventTime\" < TIMESTAMP '{args.day_to}' "
            f"AND events.\"eventData\"['userIdentity']['principalId'] = '{args.principal}' ORDER BY \"eventTime\""
        ),
    }

    def run(sql):
        rows = []
        for batch in ctx.sql(sql).collect():
            columns = [column.to_pylist() for column in batch.columns]
            rows.extend(zip(*columns))
        return rows

    return datafusion.__version__, queries, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--day-from", required=True)
    parser.add_argument("--day-to", required=True)
    parser.add_argument("--principal", required=True)
    parser.add_argument("--engine", choices=["duckdb", "datafusion"], default="duckdb")
    args = parser.parse_args()

    engine = duckdb_engine if args.engine == "duckdb" else datafusion_engine
    version, queries, execute = engine(args)
    out = {}
    for name, sql in queries.items():
        times = []
        rows = 0
        for _ in range(args.runs):
            started = time.perf_counter()
            result = execute(sql)
            times.append((time.perf_counter() - started) * 1000.0)
            rows = len(result)
        first = result[0][0] if result and len(result[0]) == 1 else None
        out[name] = {"fastest_ms": min(times), "median_ms": statistics.median(times), "rows": rows, "value": first}
    print(json.dumps({"engine": args.engine, "version": version, "queries": out}))


if __name__ == "__main__":
    main()
