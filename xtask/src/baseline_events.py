# The Python baseline for `cargo xtask bench events`: the same templates and payload rendered
# with Jinja2 and built with the standard library's `email` package, single-threaded, for the
# same wall time. Prints one JSON object: {"messages": N, "elapsed_s": S, "message_bytes": B}.
import datetime
import hashlib
import json
import sys
import time
from decimal import Decimal
from urllib.parse import quote
from email import policy
from email.message import EmailMessage

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape

templates_dir, data_path, warm_up_s, measure_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
with open(data_path, encoding="utf-8") as f:
    data = json.load(f)

SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3"}


@pass_context
def money(ctx, value, currency=None):
    code = currency or ctx["currency"]
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    return f"{SYMBOLS.get(code, code + ' ')}{amount:,.2f}"


@pass_context
def number(ctx, value):
    return f"{Decimal(str(value)):,}"


@pass_context
def date(ctx, value):
    day = datetime.date.fromisoformat(value)
    return f"{day.strftime('%B')} {day.day}, {day.year}"


# Optional payload fields are absent from the JSON (the Rust side sees them as none), so the
# default lenient Undefined stands in for them.
env = Environment(loader=FileSystemLoader(templates_dir), autoescape=select_autoescape(["html"]))
env.filters.update(money=money, number=number, date=date, mailto=lambda address: quote(address, safe="@!$'()*+,;=~"))
kind = "overdue_invoice_reminder"
subject_t = env.get_template(f"{kind}.subject.txt")
html_t = env.get_template(f"{kind}.html")
text_t = env.get_template(f"{kind}.txt")
due = datetime.date.fromisoformat(data["invoice"]["due_date"])
as_of = datetime.date.fromisoformat(data["as_of"])
key = f"{kind}\0{data['invoice']['number']}\0{data['reminder_stage']}".encode()


def render_one():
    context = dict(data, kind=kind, days_overdue=(as_of - due).days, payment_url=data.get("payment_url"),
                   customer_number=data.get("customer_number"), event_id=None)
    subject = " ".join(subject_t.render(context).split())
    context.update(subject=subject, lang="en-US")
    html = html_t.render(context)
    text = text_t.render(context)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Northwind ERP <erp@northwind.example>"
    message["To"] = f"{data['recipient']['name']} <{data['recipient']['email']}>"
    message["Cc"] = ", ".join(data["recipient"].get("cc", []))
    message["Reply-To"] = f"{data['company']['name']} <{data['company']['support_email']}>"
    message["Subject"] = subject
    message["Message-ID"] = f"<{kind}.{hashlib.sha256(key).hexdigest()[:32]}@northwind.example>"
    message["X-ERP-Event"] = kind
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


size = len(render_one())
warm_up_until = time.perf_counter() + warm_up_s
while time.perf_counter() < warm_up_until:
    render_one()
started = time.perf_counter()
count = 0
while time.perf_counter() - started < measure_s:
    render_one()
    count += 1
print(json.dumps({"messages": count, "elapsed_s": time.perf_counter() - started, "message_bytes": size}))
