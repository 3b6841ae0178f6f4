"""Parse a /metrics body (stdin) with the Prometheus client's OpenMetrics parser, as a scraper
would, and print the families as JSON: name, type, and each sample's name and labels."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": family.name,
        "type": family.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    })
print(json.dumps(families))
