"""How long ai-data-masking takes to scan a 10 KB prompt against 100 patterns.

    .venv/bin/python benchmarks/masking_bench.py [--repeat N]

The pattern set is what a company would plausibly configure: 100 ``replace_roles``
(record ids with upper-case prefixes, case-insensitive project code names, internal host
names, customer names, account and amount formats, Higress-style ``sk-`` hashing) on top
of every built-in detector (16 more patterns). The prompt is ~10 KB of English support
conversation with code and log lines, numbers and dates, and a couple of dozen sensitive
values. Everything is compiled once, as a config snapshot does, then timed:

* ``scan``: finding every hit in the 10 KB text (the figure the issue asks for);
* ``mask request``: the whole request hook's work on a chat body holding that text
  (parse-free: the body is already a dict), placeholders included;
* ``restore answer``: putting the originals back into a 10 KB answer;
* for comparison, the same patterns as one alternation (``re.finditer``), which is what
  the scanner's planning saves.

Each figure is the median of ``--repeat`` rounds (each round the mean of many calls).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import orjson

from tollway.masking.bodies import map_request
from tollway.masking.masker import Masker
from tollway.masking.shapes import scoped
from tollway.plugins.ai_data_masking import AiDataMaskingConfig

_PREFIXES = [
    "ACME", "PRJ", "INV", "CASE", "EMP", "CUST", "ORD", "TKT", "HR", "FIN",
    "OPS", "SEC", "LEGAL", "PAY", "VND", "CTR", "RFQ", "PO", "SO", "DOC",
    "LAB", "QA", "REL", "BUG", "INC", "CHG", "PRB", "KB", "SR", "WO",
]  # fmt: skip
_CODENAMES = [
    "falcon", "eagle", "heron", "osprey", "kestrel", "condor", "harrier", "merlin", "raven", "swift",
    "phoenix", "atlas", "orion", "vega", "lyra", "draco", "hydra", "pegasus", "cygnus", "aquila",
]  # fmt: skip
_DEPTS = [
    "finance",
    "hr",
    "legal",
    "eng",
    "ops",
    "sales",
    "support",
    "research",
    "infra",
    "data",
    "it",
    "sec",
    "pay",
    "crm",
    "erp",
]
_CUSTOMERS = [
    "Contoso Pharma", "Fabrikam Bank", "Northwind Traders", "Tailspin Toys", "Wingtip Air",
    "Litware Inc", "Adventure Works", "Proseware Labs", "Fourth Coffee", "Woodgrove Bank",
    "Lamna Health", "Trey Research", "Margie Travel", "Alpine Ski House", "Coho Winery",
]  # fmt: skip


def roles() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    out += [{"regex": rf"{p}-\d{{4,8}}", "type": "replace", "value": f"{p}-****"} for p in _PREFIXES]
    out += [{"regex": rf"(?i)\bproject[ _-]?{c}\b", "type": "replace", "value": "project ****"} for c in _CODENAMES]
    out += [
        {
            "regex": rf"\b[a-z0-9-]+\.{d}\.corp\.example\.com\b",
            "type": "replace",
            "value": "host.internal",
            "restore": True,
        }
        for d in _DEPTS
    ]
    out += [{"regex": name, "type": "hash", "restore": True} for name in _CUSTOMERS]
    out += [
        {"regex": r"DE\d{2}(?: ?\d{4}){4} ?\d{2}", "type": "replace", "value": "DE** IBAN"},
        {"regex": r"GB\d{2}[A-Z]{4}\d{14}", "type": "replace", "value": "GB** IBAN"},
        {"regex": r"#\d{6,}", "type": "replace", "value": "#******"},
        {"regex": r"\$\d{1,3}(?:,\d{3})+(?:\.\d\d)?", "type": "replace", "value": "$***"},
        {"regex": r"(?<!\d)\d{3}-\d{3}-\d{3}(?!\d)", "type": "replace", "value": "***-***-***"},
        {"regex": r"EUR ?\d{1,3}(?:\.\d{3})+(?:,\d\d)?", "type": "replace", "value": "EUR ***"},
        {"regex": r"sk-[0-9a-zA-Z]*", "type": "hash", "restore": True},
        {"regex": r"ghp_[0-9A-Za-z]{36}", "type": "replace", "value": "ghp_****", "restore": True},
        {"regex": r"(?i)confidential", "type": "replace", "value": "[redacted]"},
        {"regex": r"PIN:? ?\d{4,6}", "type": "replace", "value": "PIN ****"},
    ]
    tokens = ["cust_", "acct_", "user_", "tok_", "sess_", "pk_live_", "rk_live_", "whsec_", "npm_", "pat_"]
    out += [{"regex": rf"{t}[A-Za-z0-9]{{12,}}", "type": "hash", "restore": True} for t in tokens]
    assert len(out) == 100, len(out)
    return out


_PARAGRAPHS = [
    "Hi team, following up on ACME-20391 and INV-884213: Contoso Pharma says the March invoice of "
    "$12,480.00 was charged twice to the card 4111 1111 1111 1111. Their contact is "
    "maria.gonzalez@contoso-pharma.com, phone +1 415 555 2671. Can someone from billing check?",
    "The nightly export on db-07.finance.corp.example.com failed again at 02:14 UTC with a timeout after "
    "240 seconds. The job connects from 10.20.31.44 to 10.20.31.45 on port 5432; nothing else changed "
    "except the move to the new rack last Tuesday. Logs are in CASE-55012.",
    "For project falcon we still need the signed NDA from Fabrikam Bank. Their counsel, "
    "james.okafor@fabrikam.example, asked us to wire the deposit to DE89 3704 0044 0532 0130 00 before "
    "Friday; please do not send it until legal (LEGAL-4431) has approved the draft.",
    "Reminder: the staging key sk-proj-Xq93kLmN0pQrStUvWxYz1234567890abcdEF leaked into the chat log of "
    "TKT-77120 yesterday. It has been rotated, but please scrub it from the wiki page KB-3381 as well.",
    "Customer Northwind Traders reported that orders ORD-1029384 and ORD-1029385 were delivered to the "
    "wrong address. Their account number is 448-120-983 and the support PIN 4521; ticket SR-99812. "
    "Call them back at (212) 555-0147 between 9 and 5 Eastern.",
    "Deployment notes for release REL-2024 (version 3.14.2): run the migration 0042_add_index, then "
    "restart the api pods one at a time. Expect about 90 seconds of elevated latency; the p99 was "
    "1,250 ms during the last rollout on 2024-05-17, which is within the SLO of 2 seconds.",
    "HR asked me to forward the onboarding file for EMP-004512 (start date June 3). The employee's "
    "national ID on file is 110105194912310021 and SSN 536-90-4417 for the US payroll entity; please "
    "keep both out of tickets and only store them in the HR system.",
    "The analytics cluster in eu-west-1 is at 71% disk. Ops proposes adding two nodes (CHG-10233) and "
    "moving cold partitions older than 18 months to object storage. Cost estimate: EUR 3.400,00 per "
    "month, approved under PO-778120 by finance.",
    "I tried the fix from BUG-55021 but the same stack trace shows up: KeyError: 'customer_id' in "
    "billing/reconcile.py line 214, called from tasks.py line 88. The payload that triggers it came "
    "from the Wingtip Air integration at 2024-06-02T11:42:07Z.",
    "Security review for the mobile app (SEC-3012): the token refresh call still accepts expired tokens "
    "for 300 seconds, and the debug build logs the GitHub token ghp_abcdefghijklmnopqrstuvwxyz0123456789 "
    "at startup. Both must be fixed before the 4.2 release; see also INC-20931.",
    "Lamna Health wants the confidential audit summary by end of quarter. Please prepare the numbers "
    "from the reconciliation (about 14,200 transactions, 37 disputed) and send them to "
    "audit-team@lamna-health.example with reference #4471230.",
    "Thanks all. Next sync is Thursday at 15:00 CET; agenda: the Contoso double charge, project "
    "Phoenix scoping with Trey Research, and the on-call rotation for weeks 27 to 30.",
]


_TYPICAL = [
    "We are migrating the reporting service from the old cron host to the job scheduler. The plan is to "
    "move one report at a time, compare the output files for a week, and then switch off the old job. "
    "The weekly revenue report is the hardest one because it joins three databases and runs for almost "
    "an hour; the others finish in a few minutes.",
    'Here is the current job definition, trimmed:\n\n```yaml\nschedule: "0 3 * * 1"\ncommand: python '
    "reports/weekly_revenue.py --format csv --out /data/reports\ntimeout: 5400\nretries: 2\n```\n\nThe "
    "scheduler wants the timeout in seconds as well, so that part carries over unchanged.",
    "What I am unsure about is how to handle the credentials. Today the script reads them from a file in "
    "the home directory of the service user. In the scheduler every job gets its environment from the "
    "secret store, so I would change the script to read environment variables and fail loudly when one "
    "is missing, instead of falling back to defaults as it does now.",
    "Could you review the function below and suggest how to make it testable? It mixes the database "
    "query, the currency conversion and the file writing in one place, and the unit tests we have only "
    "cover the happy path.\n\n```python\ndef build_report(conn, week):\n    rows = conn.execute(QUERY, "
    "{'week': week}).fetchall()\n    total = sum(convert(r.amount, r.currency) for r in rows)\n    with "
    "open(path_for(week), 'w') as f:\n        write_csv(f, rows, total)\n    return total\n```",
    "For context, the finance team reads the CSV every Monday morning and compares the totals with the "
    "numbers in the accounting system; differences of more than half a percent are investigated by hand, "
    "which has happened twice this quarter, both times because of late currency rates.",
]
_TYPICAL_VALUES = (
    "If anything is unclear, ask Dana (dana.whitfield@example.org, +1 415 555 2671). The test card for the "
    "payment sandbox is 4111 1111 1111 1111 and the sandbox runs on 10.20.31.44; ticket ACME-20391 has the rest.\n\n"
)


def prompt(kind: str = "dense", size: int = 10_240) -> str:
    """``dense``: every paragraph full of sensitive values (156 hits in 10 KB), many
    digits. ``typical``: prose and code with half a dozen sensitive values."""
    paragraphs = _PARAGRAPHS if kind == "dense" else _TYPICAL
    text = "" if kind == "dense" else _TYPICAL_VALUES
    i = 0
    while len(text) < size:
        text += paragraphs[i % len(paragraphs)] + "\n\n"
        i += 1
    return text[:size]


def cpu_us(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """CPU time per call (µs): best and median of ``repeat`` rounds of ~0.2 s each. CPU
    time, not wall time, so a busy machine does not add its waiting to the figure."""
    fn()
    rounds: list[float] = []
    for _ in range(repeat):
        n = 0
        t0 = time.process_time()
        while (elapsed := time.process_time() - t0) < 0.2:
            fn()
            n += 1
        rounds.append(elapsed / n * 1e6)
    return min(rounds), statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    config = AiDataMaskingConfig.model_validate({"replace_roles": roles()})
    t0 = time.perf_counter()
    masker = Masker([r.compile() for r in config.replace_roles], config.detectors)
    compile_ms = (time.perf_counter() - t0) * 1000
    builtins_only = Masker([], config.detectors)
    patterns = len(masker.scanner.rules)
    # What the scanner replaces: every pattern in one alternation, tried at every position.
    naive = re.compile("|".join(scoped(r.pattern) for r in masker.scanner.rules if r.pattern is not None))
    print(
        f"python {sys.version.split()[0]}; {patterns} patterns (100 replace_roles + {patterns - 100} built-in); "
        f"compiled once in {compile_ms:.0f} ms; CPU time per call, best / median of {args.repeat} rounds"
    )
    for kind in ("dense", "typical"):
        report(kind, masker, builtins_only, naive, args.repeat)


def report(kind: str, masker: Masker, builtins_only: Masker, naive: re.Pattern[str], repeat: int) -> None:
    text = prompt(kind)
    hits = masker.scanner.scan(text)
    digits = sum(c.isdigit() for c in text) / len(text)
    body: dict[str, object] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    raw = orjson.dumps(body)
    session = masker.session(raw)
    answer = map_request("chat", body, session.mask)["messages"][0]["content"]  # echoes every placeholder
    rows = [
        ("scan, 100 roles + built-ins", cpu_us(lambda: masker.scanner.scan(text), repeat)),
        ("scan, built-ins only", cpu_us(lambda: builtins_only.scanner.scan(text), repeat)),
        ("one-alternation baseline", cpu_us(lambda: list(naive.finditer(text)), 2)),
        ("mask the chat request", cpu_us(lambda: map_request("chat", body, masker.session(raw).mask), repeat)),
        ("restore a 10 KB answer", cpu_us(lambda: session.vault.restore(answer), repeat)),
    ]
    print(f"\n{kind} prompt: {len(text)} chars, {len(hits)} hits, {digits:.0%} digits")
    for label, (best, median) in rows:
        print(f"  {label:<30} {best:8.1f} us  (median {median:.1f})")


if __name__ == "__main__":
    main()
