"""The ipsec.conf lexer/parser (strongswan-semantics.md 2.1; strongSwan 5.9.8
src/starter/parser/{lexer.l,parser.y,conf_parser.c}).

The error cases were compared with strongSwan 5.9.8's starter on this machine
(``starter --nofork --conf``): it rejects the same files ("syntax error, unexpected
STRING/EQ", "missing value for setting 'conn'", "unterminated string detected",
"section 'x' referenced in section 'a' not found") and accepts the same ones (a
missing include is only "no files found matching ...").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ikegate.config.errors import ConfigError, Diagnostics
from ikegate.config.ipsecconf import MAX_INCLUDE_DEPTH, parse_ipsec_conf


def parse(tmp_path: Path, text: str, name: str = "ipsec.conf", diagnostics: Diagnostics | None = None):
    path = tmp_path / name
    path.write_text(text)
    return parse_ipsec_conf(path, diagnostics)


def values(section) -> dict[str, str]:
    return {key: setting.value for key, setting in section.effective().items()}


def test_values_quotes_comments_and_version(tmp_path):
    conf = parse(tmp_path, (
        "# leading comment\n"
        "version 2.0\n"
        "config setup\n"
        "\tcharondebug=\"ike 1,  cfg 2\"   # comment after a value\n"
        "\n"
        "   # indented comment line\n"
        "conn a\n"
        "    leftid = a   b    c\n"
        "    rightid=\"tab\\there \\\"q\\\" \\x\"\n"
        "    leftupdown=\"/bin/up\\\n"
        "down arg\"\n"
        "    leftid2=@#0a0b0c\n"
        "    rightid2=x#not a value\n"
        "    auto=add\n"
    ))
    assert values(conf.setup) == {"charondebug": "ike 1,  cfg 2"}
    (a,) = conf.conns
    assert values(a) == {
        "leftid": "a b c",  # words joined by a single space
        "rightid": 'tab\there "q" x',
        "leftupdown": "/bin/updown arg",  # backslash-newline joins lines
        "leftid2": "@#0a0b0c",  # the @# prefix is allowed in unquoted values
        "rightid2": "x",
        "auto": "add",
    }
    setting = a.effective()["leftid"]
    assert (setting.line, setting.column, setting.value_column) == (8, 5, 14)


def test_multiline_quoted_value_keeps_newlines(tmp_path):
    conf = parse(tmp_path, 'conn a\n    leftupdown="one\ntwo"\n    auto=add\n')
    assert values(conf.conns[0])["leftupdown"] == "one\ntwo"
    assert conf.conns[0].effective()["auto"].line == 4


def test_last_wins_and_sections_merge(tmp_path):
    conf = parse(tmp_path, (
        "conn a\n    left=1.1.1.1\n    left=2.2.2.2\n"
        "conn b\n    auto=add\n"
        "conn a\n    right=3.3.3.3\n"
    ))
    assert [c.name for c in conf.conns] == ["a", "b"]
    assert values(conf.conns[0]) == {"left": "2.2.2.2", "right": "3.3.3.3"}


def test_default_applies_wherever_it_stands_and_unset_hides(tmp_path):
    conf = parse(tmp_path, (
        "conn a\n    ike=\n    auto=add\n"
        "conn %default\n    ike=aes128-sha1-modp2048\n    keyexchange=ikev2\n"
        "conn b\n    auto=add\n"
    ))
    a, b = conf.conns
    assert values(a) == {"auto": "add", "keyexchange": "ikev2"}  # ike= hides the default
    assert values(b) == {"auto": "add", "ike": "aes128-sha1-modp2048", "keyexchange": "ikev2"}
    assert [p.name for p in a.parents] == ["%default"]


def test_also_own_keys_win_and_later_also_first(tmp_path):
    conf = parse(tmp_path, (
        "conn base1\n    left=1.1.1.1\n    right=1.1.1.1\n    dpddelay=1\n"
        "conn base2\n    left=2.2.2.2\n    right=2.2.2.2\n"
        "conn child\n    right=9.9.9.9\n    also=base1\n    also=base2\n"
        "conn %default\n    dpddelay=77\n    keyingtries=5\n"
    ))
    child = conf.conn("child")
    assert [p.name for p in child.parents] == ["base2", "base1", "%default"]
    assert values(child) == {"right": "9.9.9.9", "left": "2.2.2.2", "dpddelay": "1", "keyingtries": "5"}


def test_also_linearisation_examples_of_conf_parser_c(tmp_path):
    # the two examples documented above resolve_also_single() in conf_parser.c
    conf = parse(tmp_path, (
        "conn A\n    auto=add\nconn B\n    also=A\nconn C\n    also=A\n"
        "conn D\n    also=C\n    also=B\n"
    ))
    assert [p.name for p in conf.conn("D").parents] == ["B", "C", "A"]
    conf = parse(tmp_path, (
        "conn A\n    auto=add\nconn B\n    auto=add\n"
        "conn C\n    also=A\n    also=B\n"
        "conn D\n    also=B\n    also=A\n"
        "conn E\n    also=C\n    also=D\n"
    ), name="second.conf")
    assert [p.name for p in conf.conn("E").parents] == ["D", "C", "B", "A"]


def test_also_default_is_ignored(tmp_path):
    conf = parse(tmp_path, "conn a\n    also=%default\n    also=\n    auto=add\n")
    assert conf.conns[0].also == []


def test_also_errors_reject_the_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse(tmp_path, "conn a\n    also=nothere\n")
    assert (info.value.line, info.value.column) == (2, 10)
    assert "no conn 'nothere'" in info.value.message
    with pytest.raises(ConfigError, match="also= loop"):
        parse(tmp_path, "conn a\n    also=b\nconn b\n    also=c\nconn c\n    also=a\n", name="loop.conf")
    with pytest.raises(ConfigError, match="no ca 'x'"):
        parse(tmp_path, "ca a\n    also=x\n", name="ca.conf")


def test_ca_sections_and_setup_name(tmp_path):
    conf = parse(tmp_path, (
        "config setup\n    uniqueids=no\nca root\n    cacert=root.pem\n    auto=add\n"
        "ca %default\n    crluri=http://crl\n"
    ))
    assert [c.name for c in conf.cas] == ["root"]
    assert values(conf.cas[0]) == {"cacert": "root.pem", "auto": "add", "crluri": "http://crl"}


def test_include_inserts_files_in_place(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-a.conf").write_text("    leftid=@from-include\nconn b\n    auto=add\n")
    (tmp_path / "conf.d" / "20-c.conf").write_text("conn c\n    auto=add\n")
    (tmp_path / "my file.conf").write_text("conn d\n    auto=add\n")
    diagnostics = Diagnostics()
    conf = parse(tmp_path, (
        "conn a\n    auto=add\n"
        "    include conf.d/*.conf   # trailing comment\n"
        'include "my file.conf"\n'
        "include nothing-here/*.conf\n"
    ), diagnostics=diagnostics)
    assert [c.name for c in conf.conns] == ["a", "b", "c", "d"]
    # the first line of 10-a.conf is indented: it continues conn a
    assert values(conf.conn("a")) == {"auto": "add", "leftid": "@from-include"}
    setting = conf.conn("a").effective()["leftid"]
    assert setting.path.endswith("10-a.conf") and setting.line == 1
    assert [str(d) for d in diagnostics.warnings] == [
        f"{tmp_path / 'ipsec.conf'}:5:1: warning: include: no files found matching "
        f"'{tmp_path / 'nothing-here/*.conf'}'"
    ]
    assert len(conf.files) == 4


def test_include_loop_and_depth(tmp_path):
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("conn x\n    auto=add\ninclude a.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_ipsec_conf(tmp_path / "a.conf")
    assert info.value.path.endswith("b.conf") and info.value.line == 3
    assert "include loop" in info.value.message
    for i in range(MAX_INCLUDE_DEPTH + 2):
        (tmp_path / f"d{i}.conf").write_text(f"include d{i + 1}.conf\n")
    (tmp_path / f"d{MAX_INCLUDE_DEPTH + 2}.conf").write_text("")
    with pytest.raises(ConfigError, match="nested more than"):
        parse_ipsec_conf(tmp_path / "d0.conf")


@pytest.mark.parametrize("text,line,column,message", [
    ("conn a\nauto=add\n", 2, 1, "setting 'auto' is not indented"),
    ("  conn a\n", 1, 3, "unexpected indentation"),
    ("config setup\n  config setup\n", 2, 3, "unexpected indentation"),
    ("conn a\n    auto\n", 2, 5, "missing value for setting 'auto'"),
    ("conn a\n    auto add\n", 2, 5, "missing value for setting 'auto'"),
    ("conn a\n    =add\n", 2, 5, "setting name missing before '='"),
    ('conn a\n    ""=add\n', 2, 5, "setting name can't be empty"),
    ("conn a\n    leftid=a=b\n", 2, 13, "unexpected '='"),
    ('conn a\n    leftid="open\n', 2, 12, "unterminated quoted string"),
    ('conn a\n    leftid="ends with backslash\\', 2, 12, "unterminated quoted string"),
    ("conn\n", 1, 1, "section name missing"),
    ('conn ""\n', 1, 1, "section name missing"),
    ("ca\n", 1, 1, "section name missing"),
    ("conn a b\n", 1, 8, "unexpected 'b'"),
    ("connection a\n", 1, 1, "unexpected 'connection'"),
    ("=x\n", 1, 1, "unexpected '='"),
    ("conn a\r\n", 1, 7, "carriage return"),
])
def test_syntax_errors(tmp_path, text, line, column, message):
    with pytest.raises(ConfigError) as info:
        parse(tmp_path, text)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message
    assert str(info.value).startswith(f"{tmp_path / 'ipsec.conf'}:{line}:{column}: ")


def test_settings_outside_a_section_are_dropped_with_a_warning(tmp_path):
    diagnostics = Diagnostics()
    conf = parse(tmp_path, "   auto=add\nconn a\n    auto=add\n", diagnostics=diagnostics)
    assert values(conf.conns[0]) == {"auto": "add"}
    assert "outside of any section" in diagnostics.warnings[0].message


def test_empty_and_blank_files(tmp_path):
    assert parse(tmp_path, "").conns == []
    assert parse(tmp_path, "\n\n   \n# x\n", name="blank.conf").conns == []


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        parse_ipsec_conf(tmp_path / "nothere.conf")
