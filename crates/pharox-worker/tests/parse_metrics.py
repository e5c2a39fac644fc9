"""Parses a metrics exposition from stdin with the Python reference client and
prints what it read as JSON, for the Rust tests (tests/metrics_parse.rs).

    parse_metrics.py openmetrics|prometheus < exposition

`openmetrics` is the OpenMetrics 1.0 parser (the format /metrics serves),
`prometheus` the classic text-format 0.0.4 parser. Output: a list of families,
each {"name", "type", "help", "samples": [[name, {label: value}, value]]}.
A parse error exits non-zero with the parser's message on stderr.
"""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import (
    text_string_to_metric_families as parse_prometheus,
)

PARSERS = {"openmetrics": parse_openmetrics, "prometheus": parse_prometheus}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in PARSERS:
        sys.exit("usage: parse_metrics.py openmetrics|prometheus < exposition")
    # Bytes, decoded strictly: text-mode stdin would translate line endings.
    text = sys.stdin.buffer.read().decode("utf-8")
    try:
        families = [
            {
                "name": f.name,
                "type": f.type,
                "help": f.documentation,
                "samples": [[s.name, s.labels, s.value] for s in f.samples],
            }
            for f in PARSERS[sys.argv[1]](text)
        ]
    except ValueError as e:
        sys.exit(f"{sys.argv[1]} parser: {e}")
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
