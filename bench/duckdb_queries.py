"""The SQL baseline: DuckDB — what a team would point at the same Parquet files instead of the lake —
running the bench's queries over the very files the lake wrote, on the same number of threads.

`klarity-audit bench --sql` runs it after its own queries and reports both. By hand:

    python3 bench/duckdb_queries.py --dir DATA/lake/columnar/STORE_ID --threads 2 --runs 5 \\
        --day-from '2026-06-01 00:00:00' --day-to '2026-06-02 00:00:00' --principal user-00042@example.com

Prints one JSON object: {"version": ..., "queries": {name: {"fastest_ms", "median_ms", "rows", "value"}}}
("value": the one cell of a one-column answer, such as a count, to check it against the lake's).
The lake's Parquet keeps requestParameters as JSON text, so the map-key query reads it with
json_extract_string, as the lake's own engine has to.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import duckdb
except ImportError:
    sys.exit("duckdb is not installed: python3 -m pip install duckdb")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--day-from", required=True)
    parser.add_argument("--day-to", required=True)
    parser.add_argument("--principal", required=True)
    args = parser.parse_args()

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
    out = {}
    for name, sql in queries.items():
        times = []
        rows = 0
        for _ in range(args.runs):
            started = time.perf_counter()
            result = con.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000.0)
            rows = len(result)
        first = result[0][0] if result and len(result[0]) == 1 else None
        out[name] = {"fastest_ms": min(times), "median_ms": statistics.median(times), "rows": rows, "value": first}
    print(json.dumps({"version": duckdb.__version__, "queries": out}))


if __name__ == "__main__":
    main()
