"""Owner settings (issue 10 §2): what only the server owner can grant, read from the environment
and llm_assist.yaml; server URLs, API keys and user-path checks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from llm_assist.core import host, owner


@pytest.fixture(autouse=True)
def clean_owner(monkeypatch):
    for var in [*owner.KEYS.values(), owner.ENV_SETTINGS]:
        monkeypatch.delenv(var, raising=False)
    owner.reload()
    yield
    monkeypatch.undo()
    owner.reload()


@pytest.fixture()
def folders(tmp_path):
    """Input and output folders of a pretend server, restored afterwards."""
    inp, out = tmp_path / "input", tmp_path / "output"
    inp.mkdir(), out.mkdir()
    prev_in, prev_out = host.set_input_directory(inp), host.set_output_directory(out)
    yield inp.resolve(), out.resolve()
    host.set_input_directory(prev_in), host.set_output_directory(prev_out)


def test_defaults_grant_nothing():
    s = owner.settings()
    assert (s.allow_download, s.trust_remote_code, s.extra_dirs, s.server_hosts, s.api_key_env) == (False, False, (), (), None)
    assert not owner.paths_restricted()  # standalone: the user running the command owns the paths
    with pytest.raises(owner.NotGranted, match="LLM_ASSIST_ALLOW_DOWNLOAD=1"):
        owner.check_load_grants(True, False)
    with pytest.raises(owner.NotGranted, match="LLM_ASSIST_TRUST_REMOTE_CODE=1"):
        owner.check_load_grants(False, True)
    owner.check_load_grants(False, False)


def test_environment_grants(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_ASSIST_ALLOW_DOWNLOAD", "1")
    monkeypatch.setenv("LLM_ASSIST_TRUST_REMOTE_CODE", "yes")
    monkeypatch.setenv("LLM_ASSIST_ALLOWED_DIRS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    monkeypatch.setenv("LLM_ASSIST_SERVER_HOSTS", "GPU-box:8000, other")
    monkeypatch.setenv("LLM_ASSIST_API_KEY_ENV", "MY_KEY")
    monkeypatch.setenv("MY_KEY", " sk-123 ")
    monkeypatch.setenv("LLM_ASSIST_RESTRICT_PATHS", "1")
    s = owner.reload()
    assert s.allow_download and s.trust_remote_code and s.restrict_paths
    assert s.extra_dirs == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert s.server_hosts == ("gpu-box:8000", "other")
    assert owner.api_key() == "sk-123"
    owner.check_load_grants(True, True)
    assert owner.paths_restricted()


def test_yaml_file_and_environment_wins(monkeypatch, tmp_path):
    key = tmp_path / "key.txt"
    key.write_text("from-file\n")
    conf = tmp_path / "llm_assist.yaml"
    conf.write_text("allow_download: true\ntrust_remote_code: false\nallowed_dirs: [shared, /abs/data]\n"
                    "server_hosts: [box:1234]\napi_key_file: key.txt\n")
    monkeypatch.setenv(owner.ENV_SETTINGS, str(conf))
    s = owner.reload()
    assert s.allow_download and not s.trust_remote_code
    assert s.extra_dirs == ((tmp_path / "shared").resolve(), Path("/abs/data").resolve())  # relative to the file
    assert s.server_hosts == ("box:1234",) and owner.api_key() == "from-file"
    assert str(conf) in s.source
    monkeypatch.setenv("LLM_ASSIST_ALLOW_DOWNLOAD", "0")
    assert not owner.reload().allow_download


@pytest.mark.parametrize("text, match", [
    ("allow_downloads: true\n", "unknown keys"),
    ("- a\n- b\n", "must be a mapping"),
    ("allow_download: maybe\n", "not a yes/no value"),
    ("server_hosts: ['http://x/y']\n", "no scheme or path"),
    ("allow_download: [\n", "could not be read"),
])
def test_bad_settings_file_is_a_clear_error(monkeypatch, tmp_path, text, match):
    conf = tmp_path / "llm_assist.yaml"
    conf.write_text(text)
    monkeypatch.setenv(owner.ENV_SETTINGS, str(conf))
    with pytest.raises(ValueError, match=match):
        owner.reload()


def test_missing_settings_file_named(monkeypatch, tmp_path):
    monkeypatch.setenv(owner.ENV_SETTINGS, str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="LLM_ASSIST_SETTINGS"):
        owner.reload()


def test_override_nests_and_restores():
    with owner.override(allow_download=True):
        assert owner.settings().allow_download
        with owner.override(allow_download=False, trust_remote_code=True):
            assert not owner.settings().allow_download and owner.settings().trust_remote_code
        assert owner.settings().allow_download and not owner.settings().trust_remote_code
    assert not owner.settings().allow_download
    with pytest.raises(TypeError, match="unknown settings"):
        with owner.override(allow_everything=True):
            pass


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/v1", "http://localhost:11434", "https://[::1]/v1",
                                 "http://127.3.2.1:1/v1"])
def test_loopback_servers_always_allowed(url):
    assert owner.check_server_url(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080/v1", "http://127.0.0.1.evil.example/v1",
                                 "http://127.evil.example:80/", "https://api.example.com/v1"])
def test_other_hosts_need_the_owner(url):
    with pytest.raises(owner.NotGranted, match="LLM_ASSIST_SERVER_HOSTS"):
        owner.check_server_url(url)


def test_server_hosts_with_and_without_port():
    with owner.override(server_hosts=["box:8000", "api.example.com"]):
        assert owner.check_server_url("http://box:8000/v1")
        assert owner.check_server_url("https://api.example.com/v1")
        assert owner.check_server_url("http://api.example.com:9999/v1")
        with pytest.raises(owner.NotGranted):
            owner.check_server_url("http://box:8001/v1")


@pytest.mark.parametrize("url", ["", "ftp://127.0.0.1/", "127.0.0.1:8080", "http://user:pw@127.0.0.1/v1",
                                 "http://127.0.0.1:99999/"])
def test_malformed_server_urls(url):
    with pytest.raises(ValueError, match="server_url"):
        owner.check_server_url(url)


def test_paths_free_standalone_unless_restricted(folders, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert owner.check_user_dir(elsewhere, write=True) == elsewhere.resolve()
    with owner.override(restrict_paths=True):
        with pytest.raises(owner.NotGranted, match=r"folder_path .*outside.*LLM_ASSIST_ALLOWED_DIRS"):
            owner.check_user_dir(elsewhere, write=False, what="folder_path")
        with owner.override(extra_dirs=[elsewhere]):
            assert owner.check_user_dir(elsewhere / "sub", write=True) == (elsewhere / "sub").resolve()


def test_inside_input_and_output_allowed_and_symlink_out_refused(folders, tmp_path):
    inp, out = folders
    outside = tmp_path / "secret"
    outside.mkdir()
    (inp / "link").symlink_to(outside, target_is_directory=True)
    with owner.override(restrict_paths=True):
        assert owner.check_user_dir(inp / "a" / "b", write=False) == inp / "a" / "b"
        assert owner.check_user_file(out / "x.txt", write=True) == out / "x.txt"
        with pytest.raises(owner.NotGranted, match="through a symlink"):
            owner.check_user_file(inp / "link" / "x.txt", write=True)
        with pytest.raises(owner.NotGranted):
            owner.check_user_dir(str(inp / ".." / "secret"), write=False)


@hsettings(max_examples=60, deadline=None)
@given(parts=st.lists(st.sampled_from(["..", "a", ".", "b", "..."]), min_size=1, max_size=6))
def test_relative_walks_never_escape(parts, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    inp, out = root / "in", root / "out"
    inp.mkdir(exist_ok=True), out.mkdir(exist_ok=True)
    prev_in, prev_out = host.set_input_directory(inp), host.set_output_directory(out)
    try:
        candidate = inp.joinpath(*parts)
        real = Path(os.path.normpath(candidate))
        inside = real == inp or inp in real.parents or real == out or out in real.parents
        with owner.override(restrict_paths=True):
            if inside:
                assert owner.check_user_dir(candidate, write=True) == real
            else:
                with pytest.raises(owner.NotGranted):
                    owner.check_user_dir(candidate, write=True)
    finally:
        host.set_input_directory(prev_in), host.set_output_directory(prev_out)


def test_api_key_file_unreadable_is_named(tmp_path):
    with owner.override(api_key_file=tmp_path / "missing"):
        with pytest.raises(ValueError, match="api_key_file"):
            owner.api_key()
    assert owner.api_key() is None


def test_a_broken_settings_file_breaks_only_what_asks(monkeypatch, tmp_path):
    from llm_assist.core.hf_loading import LoadOptions

    conf = tmp_path / "llm_assist.yaml"
    conf.write_text("allow_download: [\n")
    monkeypatch.setenv(owner.ENV_SETTINGS, str(conf))
    owner._cached = None  # as at a fresh start
    assert LoadOptions().allow_download is False  # loaders' defaults (built at import) still work
    with pytest.raises(ValueError, match="llm_assist.yaml could not be read"):
        LoadOptions(allow_download=True)


def test_headless_runner_grants_only_with_its_flags(models_root, tmp_path, capsys, monkeypatch):
    """`python -m llm_assist run`: a workflow's allow_download is refused unless the person running
    it grants it (--allow-download, as LLM_ASSIST_ALLOW_DOWNLOAD=1 does for a server)."""
    import json

    from llm_assist.runner.cli import main as run_main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may really be fetched in tests
    loader = {"model": "tiny-blip", "device": "cpu", "dtype": "fp32", "quantization": "none", "attention": "auto",
              "trust_remote_code": False, "allow_download": True, "keep_loaded": False, "repo_id": "some-org/some-model"}
    wf = {"1": {"class_type": "LLMAssistLoadCaptioner", "inputs": loader},
          "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    (tmp_path / "wf.json").write_text(json.dumps(wf))
    args = ["run", str(tmp_path / "wf.json"), "--output", str(tmp_path / "out"), "--no-cache"]
    assert run_main(args) == 1
    assert "LLM_ASSIST_ALLOW_DOWNLOAD=1" in capsys.readouterr().err
    assert run_main(args + ["--allow-download"]) == 1  # granted: now only the offline switch stops it
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and "LLM_ASSIST_ALLOW_DOWNLOAD=1" not in err
    assert not owner.settings().allow_download  # the grant ended with the run
