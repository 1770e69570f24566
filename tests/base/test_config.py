"""Layered config: precedence, provenance, profile inheritance, errors naming file and key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from meta_harness.base.config import Action, Config, Layer, load_config, overrides_layer
from meta_harness.base.errors import ConfigError
from meta_harness.base.layout import Workspace


@dataclass
class Env:
    """A hermetic config environment: its own XDG_CONFIG_HOME and workspace."""

    root: Path

    @property
    def user_file(self) -> Path:
        return self.root / "xdg" / "meta-harness" / "config.toml"

    @property
    def workspace(self) -> Workspace:
        return Workspace.at(self.root / "ws")

    def write_user(self, text: str | bytes) -> None:
        self.user_file.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        self.user_file.write_bytes(data)

    def write_workspace(self, text: str | bytes) -> None:
        self.workspace.root.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        self.workspace.config_file.write_bytes(data)

    def load(self, *, env: dict[str, str] | None = None, overrides: tuple[str, ...] = ()) -> Config:
        base = {"XDG_CONFIG_HOME": str(self.root / "xdg"), "HOME": str(self.root / "home")}
        return load_config(self.workspace, env={**base, **(env or {})}, overrides=overrides)


@pytest.fixture
def cfg(tmp_path: Path) -> Env:
    env = Env(tmp_path)
    env.workspace.root.mkdir()
    return env


ENV_MAX_LIVE = "META_HARNESS_SUPERVISOR__MAX_LIVE"

PRECEDENCE = [
    # (layers present, expected max_live, expected layer)
    ((), 8, Layer.BUILTIN),
    (("user",), 2, Layer.USER),
    (("workspace",), 3, Layer.WORKSPACE),
    (("user", "workspace"), 3, Layer.WORKSPACE),
    (("user", "env"), 4, Layer.ENV),
    (("user", "workspace", "env"), 4, Layer.ENV),
    (("workspace", "cli"), 5, Layer.CLI),
    (("user", "workspace", "env", "cli"), 5, Layer.CLI),
]


@pytest.mark.parametrize(("layers", "expected", "layer"), PRECEDENCE, ids=lambda v: repr(v))
def test_each_layer_overrides_the_ones_below_it(
    cfg: Env, layers: tuple[str, ...], expected: int, layer: Layer
) -> None:
    if "user" in layers:
        cfg.write_user("[supervisor]\nmax_live = 2\n")
    if "workspace" in layers:
        cfg.write_workspace("[supervisor]\nmax_live = 3\n")
    env = {ENV_MAX_LIVE: "4"} if "env" in layers else {}
    overrides = ("supervisor.max_live=5",) if "cli" in layers else ()
    config = cfg.load(env=env, overrides=overrides)
    assert config.settings.supervisor.max_live == expected
    origin = config.origin("supervisor", "max_live")
    assert origin is not None and origin.layer is layer


def test_the_origin_names_the_file_a_value_came_from(cfg: Env) -> None:
    cfg.write_user("[supervisor]\nmax_live = 2\n")
    cfg.write_workspace("[supervisor]\ndrop_settle = 0.5\n")
    config = cfg.load(env={"META_HARNESS_SUPERVISOR__IDLE_SWAP_AFTER": "30"})
    assert config.origin("supervisor", "max_live").source == str(cfg.user_file)  # type: ignore[union-attr]
    assert config.origin("supervisor", "drop_settle").source == str(  # type: ignore[union-attr]
        cfg.workspace.config_file
    )
    assert config.origin("supervisor", "idle_swap_after").layer is Layer.ENV  # type: ignore[union-attr]
    assert config.origin("supervisor", "max_drop_bytes").layer is Layer.BUILTIN  # type: ignore[union-attr]
    assert config.settings.supervisor.idle_swap_after == 30.0


def test_tables_merge_key_by_key_across_layers(cfg: Env) -> None:
    cfg.write_workspace('[agents.demo.env]\nEXTRA = "1"\n')
    config = cfg.load()
    demo = config.agent("demo")
    assert demo.env["EXTRA"] == "1"
    assert demo.env["MH_DEMO_STATE_DIR"] == "{task_dir}/agent"  # kept from the built-in layer
    assert config.origin("agents", "demo", "env", "EXTRA").layer is Layer.WORKSPACE  # type: ignore[union-attr]
    assert config.origin("agents", "demo", "command").layer is Layer.BUILTIN  # type: ignore[union-attr]


def test_a_value_set_deeper_than_any_recorded_key_reports_its_nearest_origin(cfg: Env) -> None:
    config = cfg.load()
    assert config.origin("agents", "demo", "command", "0").layer is Layer.BUILTIN  # type: ignore[union-attr]
    assert config.origin("nothing", "here") is None


def test_the_user_file_defaults_to_home_dot_config(tmp_path: Path) -> None:
    user = tmp_path / "home" / ".config" / "meta-harness" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[supervisor]\nmax_live = 7\n")
    config = load_config(None, env={"HOME": str(tmp_path / "home")})
    assert config.settings.supervisor.max_live == 7
    assert config.origin("supervisor", "max_live").source == str(user)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", 4),
        ("0.25", 0.25),
        ("true", True),
        ("word", "word"),
        ('"quoted"', "quoted"),
        ("[1, 2]", [1, 2]),
        ("a b", "a b"),
    ],
)
def test_set_values_are_toml_and_bare_words_are_strings(text: str, expected: object) -> None:
    assert overrides_layer([f"x.y={text}"]) == {"x": {"y": expected}}


@pytest.mark.parametrize("item", ["novalue", "=3", "  =3"])
def test_a_malformed_set_is_a_config_error(cfg: Env, item: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.load(overrides=(item,))
    assert caught.value.source == "--set"
    assert "KEY=VALUE" in caught.value.reason


def test_environment_variables_without_a_double_underscore_are_not_config(cfg: Env) -> None:
    config = cfg.load(env={"META_HARNESS_WORKSPACE": "/x", "META_HARNESS_CRASH_AT": "never"})
    assert "workspace" not in config.raw and "crash_at" not in config.raw


# -- profiles ------------------------------------------------------------------------------


def test_profiles_inherit_along_an_extends_chain(cfg: Env) -> None:
    cfg.write_workspace(
        """
[profiles.base]
agent = "demo"
mode = "oneshot"
description = "base"
[profiles.base.limits]
max_depth = 2
max_children = 7

[profiles.middle]
extends = "base"
description = "middle"

[profiles.leaf]
extends = "middle"
cwd = "/srv"
[profiles.leaf.limits]
max_depth = 1
"""
    )
    leaf = cfg.load().profile("leaf")
    assert leaf.name == "leaf"
    assert leaf.agent == "demo"
    assert leaf.mode == "oneshot"
    assert leaf.description == "middle"
    assert leaf.cwd == "/srv"
    assert (leaf.limits.max_depth, leaf.limits.max_children) == (1, 7)


def test_builtin_profiles_inherit_the_default_permission_rules(cfg: Env) -> None:
    demo = cfg.load().profile("demo")
    assert demo.agent == "demo"
    assert demo.permissions.default is Action.ASK
    assert [r.kind for r in demo.permissions.rules] == ["read", "search", "think"]


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        (
            '[profiles.a]\nextends = "b"\nagent = "demo"\n[profiles.b]\nextends = "a"\n',
            "profiles.a.extends",
            "cycle: a -> b -> a",
        ),
        ('[profiles.a]\nextends = "a"\nagent = "demo"\n', "profiles.a.extends", "cycle: a -> a"),
        (
            '[profiles.a]\nextends = "ghost"\nagent = "demo"\n',
            "profiles.a.extends",
            "no profile named 'ghost'",
        ),
        (
            '[profiles.a]\nextends = 3\nagent = "demo"\n',
            "profiles.a.extends",
            "must be a profile name",
        ),
    ],
    ids=["two-cycle", "self-cycle", "unknown-parent", "non-string"],
)
def test_a_broken_extends_chain_is_a_config_error_naming_the_profile(
    cfg: Env, toml: str, key: str, reason: str
) -> None:
    cfg.write_workspace(toml)
    with pytest.raises(ConfigError) as caught:
        cfg.load()
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert caught.value.source == str(cfg.workspace.config_file)


def test_asking_for_an_unknown_profile_or_agent_names_the_known_ones(cfg: Env) -> None:
    config = cfg.load()
    with pytest.raises(ConfigError, match=r"profiles\.nope: no such profile \(known: .*demo"):
        config.profile("nope")
    with pytest.raises(ConfigError, match=r"agents\.nobody: no such agent"):
        config.agent("nobody")


# -- invalid files -------------------------------------------------------------------------

INVALID = [
    ("workspace", b"[supervisor\nmax_live = 3\n", "", "invalid TOML"),
    ("user", b"max_live = = 3\n", "", "invalid TOML"),
    ("workspace", b'title = "\xff\xfe"\n', "", "not UTF-8"),
    ("workspace", b"[supervisor]\nbogus = 1\n", "supervisor.bogus", "unknown key"),
    ("user", b"[nonsense]\nx = 1\n", "nonsense", "unknown key"),
    ("workspace", b'[supervisor]\nmax_live = "many"\n', "supervisor.max_live", "integer"),
    ("workspace", b"[supervisor]\nmax_live = 0\n", "supervisor.max_live", "greater than or equal"),
    ("workspace", b"[supervisor]\ndrop_settle = -1\n", "supervisor.drop_settle", "greater"),
    ("workspace", b"[agents.x]\ncommand = []\n", "agents.x.command", "must name the program"),
    ("workspace", b'[agents.x]\ncommand = ["a"]\ncolour = 1\n', "agents.x.colour", "unknown key"),
    (
        "workspace",
        b'[profiles.x]\nagent = "nobody"\n',
        "profiles.x.agent",
        "no agent named 'nobody'",
    ),
    (
        "workspace",
        b'[profiles.x]\nagent = "demo"\ncolour = "red"\n',
        "profiles.x.colour",
        "unknown key",
    ),
    (
        "workspace",
        b'[profiles.x]\nagent = "demo"\nmode = "forever"\n',
        "profiles.x.mode",
        "'session'",
    ),
    (
        "workspace",
        b'[profiles.x]\nagent = "demo"\nmcp_servers = ["ghost"]\n',
        "profiles.x.mcp_servers",
        "no MCP server named 'ghost'",
    ),
    ("workspace", b'[profiles.x]\nmode = "session"\n', "profiles.x.agent", "required"),
    ("workspace", b"[profiles]\nx = 3\n", "profiles.x", "dictionary"),
    (
        "workspace",
        b'[supervisor]\ndefault_profile = "nope"\n',
        "supervisor.default_profile",
        "no profile named 'nope'",
    ),
]


@pytest.mark.parametrize(
    ("where", "data", "key", "reason"),
    INVALID,
    ids=[
        "ws-bad-toml",
        "user-bad-toml",
        "not-utf8",
        "unknown-key",
        "unknown-section",
        "wrong-type",
        "out-of-range",
        "negative",
        "empty-command",
        "agent-unknown-key",
        "profile-unknown-agent",
        "profile-unknown-key",
        "profile-bad-mode",
        "profile-unknown-mcp",
        "profile-missing-agent",
        "profile-not-a-table",
        "unknown-default-profile",
    ],
)
def test_an_invalid_file_is_reported_with_its_file_key_and_reason(
    cfg: Env, where: str, data: bytes, key: str, reason: str
) -> None:
    if where == "user":
        cfg.write_user(data)
        source = str(cfg.user_file)
    else:
        cfg.write_workspace(data)
        source = str(cfg.workspace.config_file)
    with pytest.raises(ConfigError) as caught:
        cfg.load()
    error = caught.value
    assert error.source == source
    assert error.key == key
    assert reason in error.reason
    assert str(error).startswith(source)
    assert error.exit_code == 78


def test_a_bad_value_from_the_environment_names_the_environment(cfg: Env) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.load(env={ENV_MAX_LIVE: "lots"})
    assert caught.value.source == "environment"
    assert caught.value.key == "supervisor.max_live"


def test_a_bad_value_from_set_names_set(cfg: Env) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.load(overrides=("supervisor.drop_settle=soon",))
    assert caught.value.source == "--set"
    assert caught.value.key == "supervisor.drop_settle"


def test_a_default_profile_set_on_the_command_line_must_exist(cfg: Env) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.load(overrides=("supervisor.default_profile=ghost",))
    assert caught.value.source == "--set"
    assert caught.value.key == "supervisor.default_profile"


def test_a_later_layer_can_fix_a_value_an_earlier_layer_got_wrong(cfg: Env) -> None:
    cfg.write_workspace("[supervisor]\nmax_live = 0\n")
    assert cfg.load(overrides=("supervisor.max_live=2",)).settings.supervisor.max_live == 2
