"""haproxy_state: names, socket addresses and admin-state bits, and the parsers fed answers captured
from HAProxy 2.6."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils import haproxy_state as hs

FMAINT, IMAINT, CMAINT, FDRAIN, IDRAIN, RMAINT, HMAINT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40

SERVERS_STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)
SERVERS_STATE = (
    "1\n"
    f"{SERVERS_STATE_HEADER}\n"
    "3 edge 1 n1 127.0.0.1 2 8 50 1 0 15 3 4 6 0 0 0 - 28881 - 0 0 - - 0\n"
    "3 edge 2 n2 127.0.0.1 0 0 1 1 2 8 2 0 6 0 0 0 - 28882 - 0 0 - - 0\n"
    "\n"
)

STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck"
)
STAT = (
    f"{STAT_HEADER}\n"
    "fe,FRONTEND,,,7,0,9983,0,0,0,0,0,0,,,,,OPEN,,,\n"
    "edge,n1,3,0,2,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0\n"
    "edge,n2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0\n"
    "edge,BACKEND,3,0,9,0,999,0,0,0,0,0,,0,0,0,0,UP,1,1,0\n"
    "\n"
)

SHOW_SESS = (
    "0x55b3189ff580: proto=tcpv4 src=127.0.0.1:33474 fe=fe be=edge srv=n1 ts=00 epoch=0 age=4s "
    "calls=2 rate=0 cpu=0 lat=0 rq[f=49c40080h,i=0,an=8000h,rx=,wx=,ax=] exp=1s rc=0 c_exp=\n"
    "0x55b3189ff590: proto=tcpv4 src=127.0.0.1:33480 fe=fe be=edge srv=n10 ts=00 age=1s\n"
    "0x55b3189ff5a0: proto=tcpv4 src=10.0.0.9:5000 fe=other be=edge srv=n1 ts=00 age=9s\n"
    "0x7f10040460a0: proto=unix_stream src=unix:1 fe=GLOBAL be=<NONE> srv=<none> ts=00 age=0s\n"
    "\n"
)


def reorder_columns(text: str, header_prefix: str, sep: str | None) -> str:
    """The same table with its columns reversed: a parser by position would break."""
    out = []
    for line in text.splitlines():
        if line.startswith(header_prefix):
            cols = line[len(header_prefix) :].split(sep)
            out.append(header_prefix + (sep or " ").join(reversed(cols)))
        elif line.strip() and not line.strip().isdigit():
            out.append((sep or " ").join(reversed(line.split(sep))))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


class TestServersState:
    def test_reads_bits_op_state_and_user_weight_by_column_name(self):
        servers = hs.parse_servers_state(SERVERS_STATE, "edge")
        assert set(servers) == {"n1", "n2"}
        n1 = servers["n1"]
        assert (n1.admin_bits, n1.op_state, n1.weight) == (8, 2, 50)
        assert n1.admin_state == "drain" and n1.operational_state == "up"
        assert servers["n2"].operational_state == "down"

    def test_column_order_does_not_matter(self):
        shuffled = reorder_columns(SERVERS_STATE, "# ", None)
        assert hs.parse_servers_state(shuffled, "edge") == hs.parse_servers_state(
            SERVERS_STATE, "edge"
        )

    def test_rows_of_other_backends_are_ignored(self):
        other = SERVERS_STATE + "4 other 1 x1 127.0.0.1 2 0 1 1 0 15 3 4 6 0 0 0 - 1 - 0 0 - - 0\n"
        assert "x1" not in hs.parse_servers_state(other, "edge")

    def test_unknown_backend_names_it_and_where(self):
        with pytest.raises(hs.HaproxyError, match="backend 'nope' not found on /s.sock"):
            hs.parse_servers_state("Can't find backend.\n\n", "nope", "/s.sock")

    def test_answer_without_table_is_an_error(self):
        with pytest.raises(hs.HaproxyError, match="no server table"):
            hs.parse_servers_state("Unknown command, but maybe...\n", "edge")

    def test_row_with_a_non_number_is_an_error_not_a_crash(self):
        bad = SERVERS_STATE.replace("2 8 50", "2 x 50")
        with pytest.raises(hs.HaproxyError, match="unexpected 'show servers state' line"):
            hs.parse_servers_state(bad, "edge")


class TestStat:
    def test_sessions_and_queue_by_header_name(self):
        counts = hs.session_counts(STAT, "edge", "n1")
        assert (counts.sessions, counts.queue) == (2, 3)
        assert not counts.idle
        assert hs.session_counts(STAT, "edge", "n2").idle

    def test_column_order_does_not_matter(self):
        shuffled = reorder_columns(STAT, "# ", ",")
        assert hs.session_counts(shuffled, "edge", "n1") == hs.SessionCounts(2, 3)

    def test_missing_server_row_is_an_error(self):
        with pytest.raises(hs.HaproxyError, match="edge/ghost missing"):
            hs.session_counts(STAT, "edge", "ghost")

    def test_answer_without_header_is_an_error(self):
        with pytest.raises(hs.HaproxyError, match="no CSV header"):
            hs.session_counts("No such proxy.\n\n", "edge", "n1")

    def test_empty_counters_read_as_zero(self):
        assert hs.session_counts(STAT.replace("edge,n2,0,0,0", "edge,n2,,0,"), "edge", "n2").idle


class TestSmallAnswers:
    def test_version_from_show_info(self):
        info = "Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nRelease_date: 2026/10/17\n\n"
        assert hs.parse_version(info) == "2.6.12-1+deb12u4"
        assert hs.parse_version("nothing here") == "unknown"

    @pytest.mark.parametrize("level", ["admin", "operator", "user"])
    def test_cli_level(self, level):
        assert hs.parse_cli_level(f"{level}\n\n") == level

    def test_cli_level_unknown_to_old_haproxy(self):
        assert hs.parse_cli_level("Unknown command, but maybe one of...\n") is None

    @pytest.mark.parametrize("answer", ["", "\n", "\n\n"])
    def test_empty_answer_to_set_is_success(self, answer):
        hs.check_set_response("set server edge/n1 state drain", answer, "/s.sock")

    def test_permission_denied_says_to_add_level_admin(self):
        with pytest.raises(hs.HaproxyError, match=r"add `level admin` to its `stats socket`"):
            hs.check_set_response("set server edge/n1 state drain", "Permission denied\n\n", "/s")

    def test_other_answer_to_set_is_an_error_quoting_it(self):
        with pytest.raises(hs.HaproxyError, match="refused .*No such server"):
            hs.check_set_response("set server edge/zz state drain", "No such server.\n\n", "/s")


class TestSessions:
    def test_only_sessions_of_that_backend_and_server(self):
        found = hs.sessions_on_server(SHOW_SESS, "edge", "n1")
        assert [s.describe() for s in found] == [
            "src=127.0.0.1:33474 fe=fe age=4s",
            "src=10.0.0.9:5000 fe=other age=9s",
        ]

    def test_description_is_capped(self):
        found = hs.sessions_on_server(SHOW_SESS * 4, "edge", "n1")
        text = hs.describe_open_sessions(found, limit=3)
        assert text.count("src=") == 3 and text.endswith("and 5 more")

    def test_no_listed_session_is_said_plainly(self):
        assert hs.describe_open_sessions([]) == "no session listed by 'show sess'"


def state(bits: int = 0, op: int = 2, weight: int = 1, name: str = "n1"):
    return hs.ServerState(name=name, admin_bits=bits, op_state=op, weight=weight)


class TestNames:
    @pytest.mark.parametrize(
        "name", ["n1", "edge-1", "edge_1", "edge.example.com", "a:b", "_x", "9", "a" * 128]
    )
    def test_accepted(self, name):
        assert hs.validate_name("server", name) == name

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "a;b",
            ";",
            "a b",
            " a",
            "a\nb",
            "a\n",
            "a\r",
            "a\tb",
            "a\\b",
            "a<<",
            "<<",
            "a<b",
            "edge/n1",
            "-a",
            ".a",
            ":a",
            "a" * 129,
            "é",
            "a\x00",
            "a'b",
            'a"b',
            "a#b",
        ],
    )
    def test_refused_with_one_line_naming_it(self, name):
        with pytest.raises(hs.HaproxyError) as err:
            hs.validate_name("backend", name)
        msg = str(err.value)
        assert "\n" not in msg and "\r" not in msg
        assert msg.startswith(f"invalid backend name {name!r}")
        assert "nothing was sent" in msg

    def test_non_string_is_refused(self):
        with pytest.raises(hs.HaproxyError):
            hs.validate_name("server", None)  # type: ignore[arg-type]  # what a careless caller passes


class TestOtherInputs:
    @pytest.mark.parametrize("weight", [None, 0, 1, 256])
    def test_weights_accepted(self, weight):
        assert hs.validate_weight(weight) == weight

    @pytest.mark.parametrize("weight", [-1, 257])
    def test_weights_refused(self, weight):
        with pytest.raises(hs.HaproxyError, match=f"invalid weight {weight}"):
            hs.validate_weight(weight)

    @pytest.mark.parametrize("value", [0, -1])
    def test_timeouts_must_be_positive(self, value):
        with pytest.raises(hs.HaproxyError, match="above 0"):
            hs.validate_timeout("socket_timeout", value)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("/run/haproxy/admin.sock", hs.UnixAddress("/run/haproxy/admin.sock")),
            ("admin.sock", hs.UnixAddress("admin.sock")),
            ("./odd:1", hs.UnixAddress("./odd:1")),
            ("127.0.0.1:9999", hs.TcpAddress("127.0.0.1", 9999)),
            ("lb-1.example.com:9999", hs.TcpAddress("lb-1.example.com", 9999)),
            ("[::1]:9999", hs.TcpAddress("::1", 9999)),
            (" 127.0.0.1:9999 ", hs.TcpAddress("127.0.0.1", 9999)),
        ],
    )
    def test_socket_addresses(self, text, expected):
        assert hs.parse_socket_address(text) == expected

    def test_tcp_address_prints_back_the_same(self):
        assert str(hs.TcpAddress("::1", 9)) == "[::1]:9"
        assert str(hs.TcpAddress("lb", 9)) == "lb:9"

    @pytest.mark.parametrize(("text", "match"), [("", "socket is empty"), ("h:70000", "1-65535")])
    def test_bad_socket_addresses(self, text, match):
        with pytest.raises(hs.HaproxyError, match=match):
            hs.parse_socket_address(text)


class TestStateNames:
    @pytest.mark.parametrize(
        ("bits", "effective", "forced"),
        [
            (0, "ready", "ready"),
            (FMAINT, "maint", "maint"),
            (FMAINT | CMAINT, "maint", "maint"),
            (CMAINT, "ready", "ready"),  # "disabled" in the config, then set ready
            (HMAINT, "ready", "ready"),  # a marker, not a maintenance
            (IMAINT, "maint", "ready"),
            (RMAINT, "maint", "ready"),
            (FDRAIN, "drain", "drain"),
            (IDRAIN, "drain", "ready"),
            (FDRAIN | IMAINT, "maint", "drain"),
            (FMAINT | FDRAIN, "maint", "maint"),
        ],
    )
    def test_effective_and_forced(self, bits, effective, forced):
        s = state(bits)
        assert (s.admin_state, s.forced_admin_state) == (effective, forced)

    def test_flags_and_operational_state(self):
        s = state(FMAINT | CMAINT, op=0)
        assert s.admin_flags == ["FMAINT", "CMAINT"]
        assert s.operational_state == "down"
        assert state(op=1).operational_state == "starting"
        assert state(op=3).operational_state == "stopping"
        assert state(op=7).operational_state == "unknown(7)"

    def test_result_shape(self):
        assert state(FDRAIN, weight=5).as_result() == {
            "admin_state": "drain",
            "forced_admin_state": "drain",
            "operational_state": "up",
            "weight": 5,
            "admin_flags": ["FDRAIN"],
            "admin_bits": FDRAIN,
        }
