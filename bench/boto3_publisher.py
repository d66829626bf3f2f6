"""The baseline publisher: what a team writes from AWS's CloudTrail Lake samples — Python, boto3's
`cloudtrail-data` client, `put_audit_events` with batches of 100 entries, one call after another.

`klarity-audit bench` runs it against the same local lake and reports the relay's end-to-end rate
as a ratio to it. It can also be run by hand:

    python3 bench/boto3_publisher.py --endpoint http://127.0.0.1:4566 \
        --channel-arn arn:aws:cloudtrail:... --events 20000 --event-file event.json

The event file holds one event's JSON with the text @UID@ where each event's UID goes. The keys are
the local lake's documented customer key unless --access-key-id / --secret-access-key say
otherwise. Prints one JSON object: events, seconds, events_per_second, failed.
"""

import argparse
import base64
import hashlib
import json
import sys
import time
import uuid

try:
    import boto3
    from botocore.config import Config
except ImportError:
    sys.exit("boto3 is not installed: python3 -m pip install boto3")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--channel-arn", required=True)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--event-file", required=True)
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--access-key-id", default="AKIAKLARITYCUSTOMER1")
    parser.add_argument("--secret-access-key", default="klarity-local-customer-secret-key-0001")
    args = parser.parse_args()

    with open(args.event_file, encoding="utf-8") as f:
        template = f.read().strip()
    if "@UID@" not in template:
        sys.exit("the event file must hold @UID@ where each event's UID goes")
    client = boto3.client(
        "cloudtrail-data",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )
    run = uuid.uuid4().hex[:8]
    sent = failed = 0
    started = time.perf_counter()
    while sent < args.events:
        count = min(args.batch, args.events - sent)
        entries = []
        for n in range(sent, sent + count):
            data = template.replace("@UID@", f"{run}-0000-4000-8000-{n:012x}")
            entries.append({
                "id": uuid.uuid4().hex,
                "eventData": data,
                "eventDataChecksum": base64.b64encode(hashlib.sha256(data.encode()).digest()).decode(),
            })
        answer = client.put_audit_events(auditEvents=entries, channelArn=args.channel_arn)
        failed += len(answer.get("failed", []))
        sent += count
    seconds = time.perf_counter() - started
    print(json.dumps({
        "events": sent,
        "seconds": seconds,
        "events_per_second": sent / seconds if seconds > 0 else 0.0,
        "failed": failed,
    }))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
