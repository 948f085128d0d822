"""strongswan.conf reader (syntax of strongSwan 5.9.8's settings_lexer.l/settings_parser.y;
getters and defaults of settings.c and conf/options/charon.opt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ikegate.config.errors import ConfigError, Diagnostics
from ikegate.config.strongswan_conf import DEFAULTS, StrongswanConf, load_strongswan_conf


def load(tmp_path: Path, text: str, files: dict[str, str] | None = None, diagnostics: Diagnostics | None = None):
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "strongswan.conf").write_text(text)
    return load_strongswan_conf(tmp_path / "strongswan.conf", diagnostics)


def test_sections_values_and_comments(tmp_path):
    conf = load(tmp_path, (
        "# strongswan.conf\n"
        "charon {\n"
        "    retransmit_tries = 3  # comment\n"
        "    retransmit_base=1.5\n"
        "    keep_alive = 2m\n"
        "    plugins {\n"
        "        attr {\n"
        "            dns = 192.0.2.1,  192.0.2.2\n"
        '            quoted = "a  b # not a comment}"\n'
        "        }\n"
        "    }\n"
        "    install_routes = no\n"
        "}\n"
        "charon { retransmit_tries = 4 }\n"
    ))
    assert conf.get_int("charon.retransmit_tries") == 4  # sections merge, last wins
    assert conf.get_float("charon.retransmit_base") == 1.5
    assert conf.get_time("charon.keep_alive") == 120
    assert conf.get("charon.plugins.attr.dns") == "192.0.2.1, 192.0.2.2"
    assert conf.get("charon.plugins.attr.quoted") == "a  b # not a comment}"
    assert conf.get_bool("charon.install_routes") is False
    assert conf.section_keys("charon.plugins.attr") == {"dns": "192.0.2.1, 192.0.2.2",
                                                        "quoted": "a  b # not a comment}"}


def test_defaults_and_unparsable_values(tmp_path):
    diagnostics = Diagnostics()
    conf = load(tmp_path, "charon {\n    cookie_threshold = many\n    fragment_size =\n}\n")
    conf.check(diagnostics, "strongswan.conf")
    assert conf.get_int("charon.cookie_threshold") == 30  # strongSwan falls back to the default
    assert conf.get_int("charon.fragment_size") == 1280  # "key =" unsets
    assert [d.message for d in diagnostics] == [
        "charon.cookie_threshold = many: not a valid int, the default 30 is used"
    ]
    empty = StrongswanConf()
    expected = {
        "charon.retransmit_tries": 5, "charon.retransmit_timeout": 4.0, "charon.retransmit_base": 1.8,
        "charon.half_open_timeout": 30, "charon.cookie_threshold": 30, "charon.cookie_threshold_ip": 3,
        "charon.fragment_size": 1280, "charon.max_packet": 10000, "charon.keep_alive": 20,
        "charon.delete_rekeyed_delay": 5,
    }
    for key, value in expected.items():
        getter = {"int": empty.get_int, "float": empty.get_float, "time": empty.get_time}[DEFAULTS[key][0]]
        assert getter(key) == value, key
    # ikegate's deliberate difference: the client's proposal order decides by default
    assert empty.get_bool("charon.prefer_configured_proposals") is False
    assert empty.get_int("charon.unknown_thing", 7) == 7


@pytest.mark.parametrize("value,expected", [("yes", True), ("TRUE", True), ("enabled", True), ("1", True),
                                            ("no", False), ("False", False), ("disabled", False), ("0", False)])
def test_booleans(tmp_path, value, expected):
    assert load(tmp_path, f"a {{ b = {value} }}\n").get_bool("a.b", not expected) is expected


def test_time_units_and_hex_ints(tmp_path):
    conf = load(tmp_path, "a {\n t1 = 30\n t2 = 30s\n t3 = 1h\n t4 = 2d\n t5 = 5 m\n i = 0x10\n bad = 1x\n}\n")
    assert [conf.get_time(f"a.t{i}") for i in range(1, 6)] == [30, 30, 3600, 172800, 300]
    assert conf.get_int("a.i") == 16
    assert conf.get_time("a.bad", 9) == 9


def test_references(tmp_path):
    conf = load(tmp_path, "base {\n    x = 1\n    sub { y = 2 }\n}\nderived : base {\n    z = 3\n}\n")
    assert conf.get("derived.x") == "1" and conf.get("derived.sub.y") == "2" and conf.get("derived.z") == "3"


def test_includes(tmp_path):
    diagnostics = Diagnostics()
    conf = load(tmp_path, (
        "charon {\n    include strongswan.d/charon/*.conf\n    port = 4500\n}\n"
        "include strongswan.d/*.conf\ninclude nothing/*.conf\n"
    ), files={"strongswan.d/charon/a.conf": "plugins { stroke { allow_swap = no } }\n",
              "strongswan.d/top.conf": "libstrongswan { x = 1 }\n"}, diagnostics=diagnostics)
    assert conf.get_bool("charon.plugins.stroke.allow_swap") is False
    assert conf.get_int("charon.port") == 4500
    assert conf.get("libstrongswan.x") == "1"
    assert "no files found matching" in diagnostics.warnings[0].message
    assert len(conf.files) == 3


@pytest.mark.parametrize("text,line,column,message", [
    ("charon {\n    a.b = 1\n}\n", 2, 6, "unexpected '.'"),
    ("charon {\n    x = 1\n", 3, 1, "missing '}'"),
    ("}\n", 1, 1, "unexpected '}'"),
    ('charon {\n    x = "open\n}\n', 2, 9, "unterminated quoted string"),
    ('"x" = 1\n', 1, 1, "unexpected string"),
    ("charon\n", 2, 1, "unexpected end of file after 'charon'"),
    ("charon x\n", 1, 1, "expected '=' or '{' after 'charon'"),
])
def test_syntax_errors(tmp_path, text, line, column, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message
