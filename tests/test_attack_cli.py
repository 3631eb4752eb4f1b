"""The command line attacked as a stranger would: malformed input is one line and a usage exit."""

from __future__ import annotations

import pytest

from gateway import cli

BAD_URLS = ["ws://[::1", "http://127.0.0.1:99999", "ws://127.0.0.1:abc", "", "ws://:8000", "ftp://gateway:8000"]
COMMANDS = [["status"], ["watch"], ["alert", "list"], ["alert", "ack", "1", "--user", "kim"],
            ["alert", "create", "--product", "1", "--type", "MANUAL", "--priority", "1", "--title", "t",
             "--message", "m"],
            ["limits", "recalculate", "--product", "1", "--characteristic", "d", "--user", "u", "--reason", "r"]]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_url_is_a_usage_error_naming_the_option_not_a_traceback(url: str, capsys) -> None:
    # before: urllib's or websockets' ValueError/InvalidURI escaped as a traceback (exit 1), and for
    # the WebSocket commands only after the other options were checked
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            cli.main([*command, "--url", url])
        assert exited.value.code == 2, command
        err = capsys.readouterr().err
        assert "Traceback" not in err and "argument --url" in err and repr(url) in err, (command, err)
        assert len(err.strip().splitlines()[-1]) < 200


def test_the_documented_url_forms_are_still_accepted() -> None:
    parser = cli.build_parser()
    for url in ["127.0.0.1:8000", "ws://127.0.0.1:8000", "wss://line3-pc:8443", "http://[::1]:8000",
                "https://line3-pc", "ws://127.0.0.1:8000/ws/spc/product/1/"]:
        assert parser.parse_args(["status", "--url", url]).url == url
        assert parser.parse_args(["alert", "list", "--url", url]).url == url


def test_analyze_refuses_a_header_that_names_a_column_twice(tmp_path, capsys) -> None:
    # before: the first `value` column was charted and the second silently ignored
    for header, column in [("value,value", "value"), ("subgroup,value,subgroup", "subgroup")]:
        path = tmp_path / "twice.csv"
        path.write_text(f"{header}\n" + "".join(f"{i},{i + 1},{i}\n" for i in range(1, 6)))
        assert cli.main(["analyze", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"the column `{column}` more than once" in err and "twice.csv:1:" in err, err


def test_probe_names_a_modbus_address_or_unit_out_of_range_before_connecting(tmp_path, capsys) -> None:
    # before: the address went to pymodbus, whose refusal was printed as "0 <= address 70000 <= 65535 !
    # (timeout 0.5s)", like a device that did not answer; here nothing listens, so it said "cannot connect"
    from tests.daemon_helpers import minimal_config, write_config

    config = write_config(tmp_path, minimal_config(tmp_path))
    for address, words in [("holding:70000", "address 70000 is outside 0..65535"),
                           ("coil:99999999999999999999", "is outside 0..65535"),
                           ("300/holding:0", "unit 300 is outside 0..255"),
                           ("holding:65534:float64", "float64 at 65534 needs registers up to 65537")]:
        assert cli.main(["probe", "--config", str(config), "plc", address]) == 1
        out = capsys.readouterr()
        assert words in out.out + out.err, (address, out)


def test_analyze_reads_a_file_whose_header_follows_blank_lines(tmp_path, capsys) -> None:
    # before: "the file is empty" for a CSV whose first row a spreadsheet left blank
    path = tmp_path / "blank-first.csv"
    path.write_text("\n\r\nvalue\n1\n2\n3\nx\n")
    assert cli.main(["analyze", str(path)]) == 1
    assert "blank-first.csv:7: row 4" in capsys.readouterr().err  # line numbers count the blank lines
    path.write_text("\n\r\nvalue\n1\n2\n3\n")
    assert cli.main(["analyze", str(path)]) == 0
    assert '"subgroups": 3' in capsys.readouterr().out
