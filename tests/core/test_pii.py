from __future__ import annotations

import ipaddress
import random

import polars as pl
import pytest

from dataplatform.core.pii import NON_PUBLIC_IPV4_NETWORKS, PIIConfig, redact_pii


def redact(text: str, **config) -> tuple[str, int]:
    out = redact_pii(pl.DataFrame({"text": [text]}), config=PIIConfig(**config))
    return out["text"][0], out["pii_count"][0]


# ----------------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize(
    "address",
    [
        "jane.doe@example.com",
        "jane+newsletter@example.com",
        "ops-team@mail.eu.example.co.uk",
        "first_last123@sub.domain.org",
        "UPPER.Case@Example.IO",
    ],
)
def test_email_replaced(address):
    text, n = redact(f"Write to {address}, please.")
    assert text == "Write to <EMAIL>, please."
    assert n == 1


def test_email_negatives():
    for s in ["user@localhost is not routable", "price @ 5 dollars", "@handle on social", "a@b"]:
        assert redact(s) == (s, 0)


# ------------------------------------------------------------------------------------- IPv4


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "81.2.69.160"])
def test_public_ipv4_replaced(ip):
    assert redact(f"The host {ip} answered.") == ("The host <IP_ADDRESS> answered.", 1)
    assert redact(f"Connect to {ip}.") == ("Connect to <IP_ADDRESS>.", 1)
    assert redact(f"({ip})") == ("(<IP_ADDRESS>)", 1)


def test_adjacent_ipv4_all_replaced_and_counted():
    text, n = redact("hosts: 8.8.8.8 1.1.1.1 9.9.9.9 4.4.4.4")
    assert text == "hosts: <IP_ADDRESS> <IP_ADDRESS> <IP_ADDRESS> <IP_ADDRESS>"
    assert n == 4


@pytest.mark.parametrize(
    "s",
    [
        "999.1.1.1 is not an address",
        "256.1.1.1 either",
        "8.8.8 has three parts",
        "01.02.03.04 has leading zeros",
        "a dotted run 1.2.3.4.5 is a version",
        "build v1.2.3.4 shipped",
        "Upgrade to version 4.2.1.0 today",
        "firmware 8.8.8.8 fixed it",
    ],
)
def test_ipv4_negatives(s):
    assert redact(s) == (s, 0)


def test_private_ipv4_kept_by_default_and_replaced_on_request():
    s = "Open http://127.0.0.1:8000 or 192.168.1.1 or 10.0.0.7 on your LAN."
    assert redact(s) == (s, 0)
    text, n = redact(s, ipv4_public_only=False)
    assert text == "Open http://<IP_ADDRESS>:8000 or <IP_ADDRESS> or <IP_ADDRESS> on your LAN."
    assert n == 3


def test_public_only_agrees_with_ipaddress_module():
    rng = random.Random(7)
    networks = [ipaddress.ip_network(n) for n in NON_PUBLIC_IPV4_NETWORKS]
    ips = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(3000)]
    # plus addresses on both sides of every range edge
    for net in networks:
        for addr in (int(net.network_address), int(net.broadcast_address)):
            for d in (-1, 0, 1):
                if 0 <= addr + d < 2**32:
                    ips.append(str(ipaddress.IPv4Address(addr + d)))
    out = redact_pii(pl.DataFrame({"text": [f"addr {ip} end" for ip in ips]}))
    for ip, replaced in zip(ips, out["pii_count"].to_list()):
        public = not any(ipaddress.ip_address(ip) in net for net in networks)
        assert replaced == int(public), ip


# ------------------------------------------------------------------------------------- IPv6


@pytest.mark.parametrize(
    "ip",
    [
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8:85a3::8a2e:370:7334",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "2001:db8::",
        "::ffff:8.8.4.4",
        "64:ff9b::8.8.8.8",
    ],
)
def test_ipv6_replaced(ip):
    assert redact(f"Reach {ip} now.") == ("Reach <IP_ADDRESS> now.", 1)


@pytest.mark.parametrize(
    "s",
    ["std::vector<int> and Foo::Bar", "at 12:30:45 sharp", "ratio 3:2", "MAC 00:1a:2b:3c:4d:5e"],
)
def test_ipv6_negatives(s):
    assert redact(s) == (s, 0)


# ----------------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415-555-0132",
        "(415) 555-0132",
        "(415)555-0132",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "+49 30 12345678",
        "+1 (415) 555-0132",
        "+14155550132",
        "415-555-0132",
        "415.555.0132",
        "1-800-555-0199",
        "020 7946 0958",
    ],
)
def test_phone_replaced(phone):
    assert redact(f"Call {phone} today.") == ("Call <PHONE_NUMBER> today.", 1)


@pytest.mark.parametrize(
    "s",
    [
        "Founded in 1999, rebuilt in 2024.",
        "Now only $1,299.99 or 45.50 EUR.",
        "Published 2024-01-05, updated 05.01.2024 and 12/25/2024.",
        "ISBN 978-3-16-148410-0 or 9783161484100 or 0-306-40615-2.",
        "Requires Python 3.11.4 and numpy 1.26.0.",
        "Table: 150 300 1200 and 415 555 0132",
        "Order #1234567890 shipped.",
        "Score 3-2, pages 100-200, population 8,000,000.",
    ],
)
def test_phone_and_general_negatives(s):
    assert redact(s) == (s, 0)


# ----------------------------------------------------------------------------------- config


def test_per_kind_counts_and_toggles():
    df = pl.DataFrame(
        {
            "id": [1, 2, 3],
            "text": [
                "a@example.com, 8.8.8.8 and +1 415-555-0132 or b@example.org",
                "nothing here",
                None,
            ],
        }
    )
    out = redact_pii(df, config=PIIConfig(per_kind_counts=True))
    assert out.columns == ["id", "text", "pii_count", "pii_email_count", "pii_ip_count", "pii_phone_count"]
    assert out["text"].to_list() == [
        "<EMAIL>, <IP_ADDRESS> and <PHONE_NUMBER> or <EMAIL>",
        "nothing here",
        None,
    ]
    assert out["pii_count"].dtype == pl.Int32
    assert out["pii_count"].to_list() == [4, 0, 0]
    assert out["pii_email_count"].to_list() == [2, 0, 0]
    assert out["pii_ip_count"].to_list() == [1, 0, 0]
    assert out["pii_phone_count"].to_list() == [1, 0, 0]

    off = redact_pii(df, config=PIIConfig(emails=False, phone_numbers=False, ip_placeholder="[ip]"))
    assert off["text"][0] == "a@example.com, [ip] and +1 415-555-0132 or b@example.org"
    assert off["pii_count"].to_list() == [1, 0, 0]
    assert "pii_email_count" not in off.columns


def test_custom_placeholders_with_dollar_are_literal():
    text, n = redact("mail x@example.com", email_placeholder="$1<E>")
    assert text == "mail $1<E>"
    assert n == 1


def test_placeholder_that_looks_like_pii_is_rejected():
    with pytest.raises(ValueError, match="ip_placeholder"):
        PIIConfig(ip_placeholder="22.214.171.124")


def test_bad_column_is_named():
    with pytest.raises(ValueError, match="body"):
        redact_pii(pl.DataFrame({"text": ["x"]}), text_column="body")
    with pytest.raises(ValueError, match="String"):
        redact_pii(pl.DataFrame({"text": [1]}))


def test_other_text_column_and_existing_count_replaced():
    df = pl.DataFrame({"body": ["ping 8.8.8.8"], "pii_count": [99]})
    out = redact_pii(df, text_column="body")
    assert out.columns == ["body", "pii_count"]
    assert out.row(0) == ("ping <IP_ADDRESS>", 1)
