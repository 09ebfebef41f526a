"""Code registered from outside mrl (a metrics reader, a report section, a backend in a
module of its own, as a third party writes one) that fails is one `mrl: error:` line naming
it and where, exit 1, never mrl's "internal error" traceback; and it cannot make the page
say what the records do not. Each case runs the real command in a subprocess that imports
the plugin module first, as a wrapper script of the plugin's author would."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from metarunlog import plugins
from metarunlog.states import JobState
from tests.helpers.records import done, grid_exp, make_exp
from tests.helpers.repo import GIT_ENV, REPO_ROOT, commit_all, run_mrl, set_cfg

PLUGIN = "acme_plugin"


@pytest.fixture(autouse=True)
def _registries_restored() -> Iterator[None]:
    """A plugin a test imports in this process (an experiment's cfg read here) is forgotten after it."""
    from metarunlog.backends import registry as backends
    from metarunlog.metrics import registry as readers
    from metarunlog.report import registry as sections

    saved = (dict(backends._SPECS), dict(readers._READERS), list(sections._SECTIONS), set(sys.modules))
    yield
    backends._SPECS.clear()
    backends._SPECS.update(saved[0])
    readers._READERS.clear()
    readers._READERS.update(saved[1])
    sections._SECTIONS[:] = saved[2]
    for name in set(sys.modules) - saved[3]:
        if name.startswith("acme"):
            del sys.modules[name]


def run_with_plugin(project: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`mrl ARGS` in `project`, in a process that imported `source` as a module of its own."""
    folder = project.parent / "plugin"
    folder.mkdir(exist_ok=True)
    (folder / f"{PLUGIN}.py").write_text(textwrap.dedent(source))
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(folder)])}
    env.pop("MRL_DEBUG", None)
    code = f"import {PLUGIN}; from metarunlog.main import main; raise SystemExit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def one_error(res: subprocess.CompletedProcess[str]) -> str:
    """The `mrl: error:` lines of a failed command, asserting it is no traceback."""
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("mrl: error: ")]
    assert errors, res.stderr
    return "\n".join(errors)


def two_done(project: Path) -> Path:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}, "status": done()}])
    for i in (1, 2):
        (exp.subexp_dir(i) / "result.txt").write_text("score=1\n")
        (exp.subexp_dir(i) / "metrics.json").write_text('{"acc": 0.5}')
    return exp.dir


READER = """
    from metarunlog.metrics import Reader, register

    @register
    class Bad(Reader):
        name = "bad"
        globs = ("result.txt",)

        def summary(self, files):
            {summary}

        def rows(self, files):
            {rows}
"""


@pytest.mark.parametrize(
    ("summary", "rows", "said"),
    [
        ('raise ValueError("boom in summary")', "return iter(())", "raised ValueError: boom in summary"),
        ("return [1, 2]", "return iter(())", "summary() returned a list, not a dict or None"),
        ("return None", 'yield {"step": 0, "loss": 1.0}; raise KeyError("lost")', "raised KeyError: 'lost'"),
        ("return None", "yield 5", "rows() yielded a int, not a dict"),
        ("return {1: 2.0}", "return iter(())", "summary() returned the key 1 (int), not a str"),
        ("return None", 'yield {"step": 0, None: 1.0}', "rows() yielded a row with the key None (NoneType), not a str"),
    ],
    ids=["summary raises", "summary not a dict", "rows raise", "row not a dict", "summary key", "row key"],
)
def test_a_plugin_reader_that_fails_is_an_error_line_naming_it_and_the_table_is_still_printed(
    project: Path, summary: str, rows: str, said: str
) -> None:
    exp_dir = two_done(project)
    res = run_with_plugin(project, READER.format(summary=summary, rows=rows), "table")
    errors = one_error(res)
    assert f"metrics reader 'bad' reading {exp_dir / '001'}" in errors and said in errors
    if "raised" in said:
        assert f"{PLUGIN}.py line " in errors
    assert "001" in res.stdout and "0.5" in res.stdout  # the other readers' values are still shown


SECTION = """
    from metarunlog.report.registry import section

    @section("acme", "_acme.html", nav="acme", after="table", source={source!r})
    def acme(rep):
        {body}
"""


@pytest.mark.parametrize(
    ("body", "source", "said"),
    [
        ('raise KeyError("boom")', "<section id='acme'></section>", "report section 'acme' raised KeyError: 'boom' ("),
        ("return [1]", "<section id='acme'></section>", "its context function returned a list, not a dict or None"),
        ("return {}", "<section id='acme'>{{ nope }}</section>", "template _acme.html line 1: 'nope' is undefined"),
        ("return {}", "<section id='acme'>{% if %}</section>", "template _acme.html line 1: template syntax error"),
        (
            'return {"key": rep.add_model("a figure", "acme")}',
            "<section id='acme'>{{ bokeh_divs[key] }}</section>",
            "raised TypeError: expected a bokeh model (figure, layout...), got str (",
        ),
    ],
    ids=["context raises", "context not a dict", "undefined variable", "syntax error", "not a bokeh model"],
)
def test_a_plugin_section_that_fails_is_one_error_line_naming_it(
    project: Path, body: str, source: str, said: str
) -> None:
    grid_exp(project)
    errors = one_error(run_with_plugin(project, SECTION.format(body=body, source=source), "analyze"))
    assert "report section 'acme'" in errors and said in errors


def test_a_plugin_section_cannot_make_the_page_header_say_done_or_change_the_description(project: Path) -> None:
    exp = grid_exp(project)  # one run failed, one never ran: not done
    lie = '{"done": True, "description": "all good", "errors": [], "exp_name": "9999"}'
    res = run_with_plugin(
        project, SECTION.format(body=f"return {lie}", source="<section id='acme'>hi</section>"), "analyze"
    )
    assert res.returncode == 0, res.stderr
    page = (exp.dir / "analysis" / "index.html").read_text()
    header = page[page.index("<header>") : page.index("</header>")]
    assert 'class="notdone"' in header and "made by a test" in header
    assert "all good" not in page and "9999" not in header


BACKEND = """
    from metarunlog.backends.base import Backend
    from metarunlog.backends.registry import BackendSpec, register

    class Acme(Backend):
        name = "acme"
        liveness = False

        def submit(self, jobs):
            {submit}

        def poll(self, jobs):
            {poll}

        def cancel(self, jobs):
            pass

    class NotABackend:
        pass

    register(BackendSpec("acme", "{PLUGIN}:{target}"))
"""


def backend(target: str = "Acme", submit: str = "pass", poll: str = "return [j.state for j in jobs]") -> str:
    return BACKEND.replace("{PLUGIN}", PLUGIN).format(target=target, submit=submit, poll=poll)


def test_a_plugin_backend_class_that_is_no_backend_is_one_error_line(project: Path) -> None:
    two_done(project)
    errors = one_error(run_with_plugin(project, backend(target="NotABackend"), "run", "--force", "--backend", "acme"))
    assert f"the acme backend ({PLUGIN}:NotABackend) is not a metarunlog.backends.base.Backend subclass" in errors


def test_a_plugin_backend_module_that_fails_to_import_is_one_error_line(project: Path) -> None:
    two_done(project)
    source = """
        from metarunlog.backends.registry import BackendSpec, register
        register(BackendSpec("acme", "acme_broken:X"))
    """
    (project.parent / "plugin").mkdir()
    (project.parent / "plugin" / "acme_broken.py").write_text("raise RuntimeError('no licence server')\n")
    errors = one_error(run_with_plugin(project, source, "run", "--force", "--backend", "acme"))
    assert "importing the acme backend (acme_broken:X) raised RuntimeError: no licence server" in errors
    assert "acme_broken.py line 1" in errors


def test_a_plugin_backend_whose_submit_raises_is_one_error_line_and_no_record_claims_a_run(project: Path) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    exp = make_exp(project, [{"params": {"lr": 0.1}}, {"params": {"lr": 0.2}}])
    errors = one_error(
        run_with_plugin(project, backend(submit='raise OSError(5, "cluster gone")'), "run", "--backend", "acme")
    )
    assert "the acme backend raised OSError: [Errno 5] cluster gone" in errors and f"{PLUGIN}.py line " in errors
    assert not list(exp.dir.glob("*/.mrl.status"))
    assert not list(exp.dir.glob(".mrl.owners/*.json"))  # the run's claim went with it


LEAVES_ONE = """
    from metarunlog.backends.base import Backend
    from metarunlog.backends.registry import BackendSpec, register
    from metarunlog.execute import ExecOptions, execute

    class Acme(Backend):
        def submit(self, jobs):
            for job in jobs:
                if job.id != 2:  # a bug of its own: 002 is never run
                    execute(job.sub, ExecOptions(backend="acme", force=self.options.force))

        def poll(self, jobs):
            return [j.observe() for j in jobs]

    register(BackendSpec("acme", "acme_plugin:Acme", liveness=True))
"""


@pytest.mark.parametrize("rerun", ["--force", "--failed"])
def test_a_plugin_backend_that_leaves_a_job_alone_never_reports_its_earlier_record_as_this_runs(
    project: Path, rerun: str
) -> None:
    set_cfg(project, run={"command": "echo ran > out.txt"})
    commit_all(project, "run command")
    state = done() if rerun == "--force" else done(state=JobState.FAILED, exit_code=3)
    exp = make_exp(project, [{"params": {"lr": lr}, "status": state} for lr in (0.1, 0.2, 0.3)])
    before = (exp.subexp_dir(2) / ".mrl.status").read_text()
    res = run_with_plugin(project, LEAVES_ONE, "run", rerun, "--backend", "acme")
    # before: "[2/3] 002 done in 12.5s", "3 done", exit 0 (--force); "1 failed" (--failed)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    line = next(ln for ln in res.stdout.splitlines() if " 002 " in ln)
    assert "002 not run: the acme backend did not run it (its record says " in line, res.stdout
    summary = res.stdout.splitlines()[-1]
    assert "2 done" in summary and "1 not run by the backend" in summary and "failed" not in summary, summary
    assert (exp.subexp_dir(2) / ".mrl.status").read_text() == before  # its record is left as it was
    assert (exp.subexp_dir(1) / "out.txt").exists() and not (exp.subexp_dir(2) / "out.txt").exists()


WAITING = """
    from metarunlog.backends.base import Backend
    from metarunlog.backends.registry import BackendSpec, register

    class Acme(Backend):
        waits = True

        def submit(self, jobs):
            pass

        def poll(self, jobs):
            return {poll}

    register(BackendSpec("acme", "acme_plugin:Acme"))
"""


@pytest.mark.parametrize(
    ("poll", "said"),
    [
        ("5", "returned an int, not a list of one JobState per job"),
        ("[j.state for j in jobs][1:]", "returned 1 state(s) for 2 job(s)"),
        ('["done" for j in jobs]', "returned 'done' (str) for 001, not a JobState"),
    ],
    ids=["no list", "one short", "str"],
)
def test_a_plugin_backend_whose_poll_answers_no_state_per_job_is_one_error_line(
    project: Path, poll: str, said: str
) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    make_exp(project, [{"params": {"lr": 0.1}}, {"params": {"lr": 0.2}}])
    errors = one_error(run_with_plugin(project, WAITING.format(poll=poll), "run", "--backend", "acme"))
    assert f"the acme backend's poll(jobs) {said}" in errors, errors  # a TypeError traceback before


@pytest.mark.parametrize("slots", ["1", '"gpu0"', "[0, 1]"], ids=["int", "str", "ints"])
def test_a_plugin_backend_whose_slots_are_no_list_of_names_is_one_error_line(project: Path, slots: str) -> None:
    set_cfg(project, run={"command": "true"})
    commit_all(project, "run command")
    make_exp(project, [{"params": {"lr": 0.1}}])
    source = WAITING.format(poll="[j.observe() for j in jobs]") + f"    Acme.slots = {slots}\n"
    errors = one_error(run_with_plugin(project, source, "run", "--backend", "acme"))
    assert f"the acme backend's slots is {eval(slots)!r}" in errors, errors  # a TypeError traceback (int) before


def test_mrl_status_says_when_a_plugin_backend_cannot_answer_and_shows_the_rest(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}}])
    (exp.subexp_dir(2) / ".mrl.status").write_text(
        '{"state": "running", "backend": "acme", "jobId": "7", "host": "elsewhere", "attempts": 1}'
    )
    res = run_with_plugin(project, backend(poll='raise RuntimeError("no answer")'), "status")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "could not ask acme: the acme backend raised RuntimeError: no answer" in res.stdout + res.stderr
    assert "1 done" in res.stdout


def test_mrl_s_own_code_is_not_a_plugin() -> None:
    from metarunlog.metrics.jsonfiles import JsonReader
    from metarunlog.report import sections

    assert not plugins.is_foreign(JsonReader) and not plugins.is_foreign(sections.git)
    assert not plugins.is_foreign("metarunlog.backends.local") and plugins.is_foreign("acme.backend")
    assert plugins.is_foreign(test_mrl_s_own_code_is_not_a_plugin)


def test_an_exception_in_mrl_s_own_code_is_raised_as_it_is_a_bug() -> None:
    from metarunlog.fmt import fmt_duration

    with pytest.raises(ZeroDivisionError), plugins.blamed("the local backend", "metarunlog.backends.local"):
        _ = 1 / 0
    # a plugin's call whose exception never went through the plugin's code: mrl's bug
    with pytest.raises(TypeError), plugins.blamed("the acme backend", __name__):
        fmt_duration("soon")  # type: ignore[arg-type]
    # ... but a call that did not even get into the plugin (a wrong signature) is its fault
    with pytest.raises(plugins.PluginError, match="takes 0 positional arguments"), plugins.blamed("x", __name__):
        test_mrl_s_own_code_is_not_a_plugin(1)  # type: ignore[call-arg]
    said = r"the acme backend raised ZeroDivisionError: .*test_plugins.py line"
    with pytest.raises(plugins.PluginError, match=said), plugins.blamed("the acme backend", __name__):
        _ = 1 / 0


LOCAL_PLUGIN = '''
import os
from dataclasses import dataclass

from metarunlog.backends.base import Backend
from metarunlog.backends.registry import BackendSpec, RunArg, Setting, register
from metarunlog.execute import ExecOptions, execute
from metarunlog.metrics import Reader, register as register_reader
from metarunlog.report.registry import section


@dataclass
class InlineOptions:
    word: str = "hi"


class Inline(Backend):
    """Runs each job in the mrl process, one after the other."""

    name = "inline"

    @classmethod
    def run_options(cls, values, block):
        return InlineOptions(values.get("word") or block.get("word") or "hi")

    def submit(self, jobs):
        env = {**os.environ, "WORD": self.own_options(InlineOptions).word}
        for job in jobs:
            job.status = execute(job.sub, ExecOptions(backend=self.name, env=env, force=self.options.force))
            job.state = job.status.state

    def poll(self, jobs):
        return [j.state for j in jobs]

    def cancel(self, jobs):
        pass


register(BackendSpec("inline", "acme_mrl:Inline", settings={"word": Setting("hi", (str,))},
                     run_args=(RunArg(("--word",), "word", {"help": "inline: what $WORD is"}),), liveness=True))


@register_reader
class Kv(Reader):
    name = "kv"
    globs = ("result.txt",)

    def summary(self, files):
        return dict((k, float(v)) for k, v in (line.split("=") for f in files for line in f.read_text().split()))


@section("kvs", "_kvs.html", nav="kv", after="table", source='<section id="kvs">{{ n_kv }} kv runs</section>')
def kvs(rep):
    return {"n_kv": len(rep.subs)}
'''


def test_modules_named_in_plugins_give_the_plain_mrl_command_a_backend_a_reader_and_a_section(project: Path) -> None:
    (project / "acme_mrl.py").write_text(LOCAL_PLUGIN)
    (project / "conf.lua").write_text("x = {{x}}\n-- MRL:grid['x'] = [1, 2]\n")
    command = 'echo "score=$(( {{x}} * 10 ))" > result.txt; echo "$WORD" > word.txt'
    set_cfg(project, plugins=["acme_mrl"], run={"command": command, "backend": "inline", "inline": {"word": "hej"}})
    commit_all(project, "plugin")
    help_text = run_mrl("run", "--help", cwd=project, check=True).stdout
    assert "{local,slurm,inline}" in help_text and "--word" in help_text
    for args in (("new", "kv"), ("makebatch",)):
        run_mrl(*args, cwd=project, check=True)
    res = run_mrl("run", cwd=project)
    assert res.returncode == 0 and "on inline" in res.stdout, res.stderr
    exp = project / "output" / "0001"
    assert (exp / "002" / "word.txt").read_text() == "hej\n"
    assert '"backend": "inline"' in (exp / "002" / ".mrl.status").read_text()
    run_mrl("run", "--force", "--word", "bonjour", cwd=project, check=True)
    assert (exp / "001" / "word.txt").read_text() == "bonjour\n"
    rows = list(csv.DictReader(io.StringIO(run_mrl("table", "--csv", cwd=project, check=True).stdout)))
    assert [(r["id"], r["state"], r["score"]) for r in rows] == [("001", "done", "10.0"), ("002", "done", "20.0")]
    run_mrl("analyze", cwd=project, check=True)
    page = (exp / "analysis" / "index.html").read_text()
    assert '<section id="kvs">2 kv runs</section>' in page and 'href="#kvs"' in page


@pytest.mark.parametrize(
    ("plugins", "said"),
    [
        (["acme_nowhere"], "'plugins': cannot import acme_nowhere (No module named 'acme_nowhere'): install it"),
        ("acme_mrl", "'plugins' must be a list of module names"),
        (["acme_broken"], "'plugins': importing acme_broken raised ZeroDivisionError: division by zero ("),
    ],
    ids=["missing", "not a list", "raises"],
)
def test_a_plugins_entry_that_cannot_be_imported_is_one_error_line(project: Path, plugins: object, said: str) -> None:
    (project / "acme_broken.py").write_text("x = 1 / 0\n")
    set_cfg(project, plugins=plugins)
    res = run_mrl("table", cwd=project)
    assert said in one_error(res)
    if isinstance(plugins, list):  # `mrl ls` needs no plugin: it never imports one
        assert run_mrl("ls", cwd=project).returncode == 0
    else:  # a value that is no list of names is wrong for every command
        assert said in one_error(run_mrl("ls", cwd=project))


CHATTY = """
    import sys
    print("acme loaded")
    from metarunlog.metrics import Reader, register

    @register
    class Chatty(Reader):
        name = "chatty"
        globs = ("result.txt",)

        def summary(self, files):
            print("acme summary")
            if {exit_in_summary}:
                sys.exit(0)
            return {{"score": 1.0}}

        def rows(self, files):
            print("acme rows")
            yield {{"step": 1, "score": 1.0}}
            print("acme rows again")
"""


def test_what_a_plugin_prints_goes_to_stderr_so_table_json_stays_json(project: Path) -> None:
    two_done(project)
    (project / "acme_chatty.py").write_text(textwrap.dedent(CHATTY.format(exit_in_summary=False)))
    set_cfg(project, plugins=["acme_chatty"])
    for fmt in ("--json", "--csv"):
        res = run_mrl("table", fmt, "--summary", "both", cwd=project, check=True)
        assert "acme" not in res.stdout, res.stdout  # the JSON began with "acme loaded" before
        assert "acme loaded" in res.stderr and "acme summary" in res.stderr and "acme rows" in res.stderr
    assert [r["score"] for r in json.loads(run_mrl("table", "--json", cwd=project, check=True).stdout)] == [1.0, 1.0]


def test_a_plugin_that_calls_sys_exit_is_one_error_line_naming_it(project: Path) -> None:
    two_done(project)
    (project / "acme_chatty.py").write_text(textwrap.dedent(CHATTY.format(exit_in_summary=True)))
    set_cfg(project, plugins=["acme_chatty"])
    errors = one_error(run_mrl("table", cwd=project))  # exit 0 and no table at all before
    assert "metrics reader 'chatty' reading" in errors and "exited with 0" in errors and "acme_chatty.py line" in errors


HEAVY = """
    import os, sys
    with open(os.path.join(os.path.dirname(__file__), "imported.txt"), "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\\n")  # as torch would, it costs every command that imports it

    from metarunlog.backends.base import Backend
    from metarunlog.backends.registry import BackendSpec, register

    class Acme(Backend):
        liveness = False

        def poll(self, jobs):
            for job in jobs:
                job.observe()
                job.message = "acme says hi"
            return [j.state for j in jobs]

    register(BackendSpec("acme", "acme_heavy:Acme"))
"""


def test_the_commands_that_need_no_plugin_never_import_one(project: Path) -> None:
    (project / "acme_heavy.py").write_text(textwrap.dedent(HEAVY))
    set_cfg(project, plugins=["acme_heavy"])
    commit_all(project, "plugin")
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}, {"params": {"lr": 0.2}}])
    imported = project / "imported.txt"
    imported.unlink(missing_ok=True)  # make_exp read the config in this process
    for args in (("--help",), (), ("ls",), ("status",), ("status", "--help"), ("info",), ("last",), ("info", "1/1")):
        res = run_mrl(*args, cwd=project)
        assert res.returncode == 0, (args, res.stderr)
        assert not imported.exists(), args  # every one of them imported it before
    run_mrl("table", cwd=project, check=True)
    assert imported.read_text().split() == ["table"]
    # a record of the plugin's backend: `mrl status` imports it then, to ask it
    (exp.subexp_dir(2) / ".mrl.status").write_text(
        '{"state": "running", "backend": "acme", "jobId": "7", "host": "elsewhere", "attempts": 1}'
    )
    res = run_mrl("status", cwd=project, check=True)
    assert "acme says hi" in res.stdout + res.stderr and imported.read_text().split() == ["table", "status"]
    # and when the plugin cannot be imported now, status still shows the records, saying why
    set_cfg(project, plugins=["acme_gone"])
    res = run_mrl("status", cwd=project)
    assert res.returncode == 0 and "1 done" in res.stdout, res.stderr
    assert "could not ask acme: " in res.stdout and "cannot import acme_gone" in res.stdout


CLASHING = """
    from metarunlog.backends.base import Backend
    from metarunlog.backends.registry import BackendSpec, RunArg, Setting, register

    class Acme(Backend):
        pass

    register(BackendSpec("acme", "acme_plugin:Acme", settings={"n": Setting(1, (int,), lambda v: 1 / 0)},
                         run_args=(RunArg(("--force",), "acme_force", {"action": "store_true"}),)))
"""


def test_a_plugin_backend_option_clashing_with_one_of_mrl_run_is_one_error_line(project: Path) -> None:
    errors = one_error(run_with_plugin(project, CLASHING, "run", "--help"))
    assert "the acme backend's mrl run option --force: argument --force: conflicting option string" in errors
    listing = run_with_plugin(project, CLASHING, "--help")  # the other commands are still listed
    assert listing.returncode == 0 and "(cannot be run: the acme backend's mrl run option --force" in listing.stdout


def test_a_plugin_backend_setting_check_that_raises_is_one_error_line(project: Path) -> None:
    set_cfg(project, run={"acme": {"n": 2}})
    errors = one_error(run_with_plugin(project, CLASHING, "ls"))
    assert "the check of 'run.acme.n' raised ZeroDivisionError: division by zero" in errors and PLUGIN in errors


def test_a_plugin_reader_that_fails_to_start_is_one_error_line_naming_it(project: Path) -> None:
    two_done(project)
    source = """
        from metarunlog.metrics import Reader, register

        @register
        class Bad(Reader):
            name = "bad"

            def active(self):
                return self.settings.patterns[0] is not None
    """
    errors = one_error(run_with_plugin(project, source, "table"))
    assert (
        "metrics reader 'bad' raised IndexError: tuple index out of range" in errors and f"{PLUGIN}.py line 9" in errors
    )


def test_an_experiment_s_own_mrl_cfg_may_name_plugins_too(project: Path) -> None:
    (project / "acme_mrl.py").write_text(LOCAL_PLUGIN)
    set_cfg(project, run={"command": 'echo "$WORD" > word.txt'})
    commit_all(project, "plugin")
    exp = make_exp(project, [{"params": {"x": 1}}])
    (exp.dir / ".mrl.cfg").write_text(
        '{"plugins": ["acme_mrl"], "run": {"backend": "inline", "inline": {"word": "yo"}}}'
    )
    res = run_mrl("run", cwd=project)
    assert res.returncode == 0 and "on inline" in res.stdout, res.stderr
    assert (exp.subexp_dir(1) / "word.txt").read_text() == "yo\n"


def test_mrl_cancel_of_a_plugin_backend_without_cancel_is_one_error_line(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    (exp.subexp_dir(1) / ".mrl.status").write_text(
        '{"state": "running", "backend": "acme", "jobId": "7", "host": "elsewhere", "attempts": 1}'
    )
    source = """
        from metarunlog.backends.base import Backend
        from metarunlog.backends.registry import BackendSpec, register

        class Acme(Backend):
            def poll(self, jobs):
                return [j.observe() for j in jobs]

        register(BackendSpec("acme", "acme_plugin:Acme"))
    """
    errors = one_error(run_with_plugin(project, source, "cancel"))
    assert "the Acme backend defines no cancel(jobs)" in errors


TAKING_A_DEST = """
    from metarunlog.backends.base import Backend
    from metarunlog.backends.registry import BackendSpec, RunArg, register

    class Acme(Backend):
        pass

    register(BackendSpec("acme", "acme_plugin:Acme", run_args=(RunArg(("--acme-force",), "{dest}", {{}}),)))
"""


@pytest.mark.parametrize("dest", ["force", "selection", "slurm_opt", "mode"])
def test_a_plugin_backend_option_taking_the_dest_of_another_option_is_one_error_line_naming_it(
    project: Path, dest: str
) -> None:
    errors = one_error(run_with_plugin(project, TAKING_A_DEST.format(dest=dest), "run", "--acme-force", "x"))
    assert f"the acme backend's mrl run option --acme-force: its dest {dest!r} is already" in errors
    assert "rename it" in errors


def test_a_plugin_backend_option_that_cannot_be_added_leaves_mrl_help_and_other_commands_working(
    project: Path,
) -> None:
    source = TAKING_A_DEST.format(dest="force")
    res = run_with_plugin(project, source, "--help")
    assert res.returncode == 0, res.stderr
    assert "ls" in res.stdout and "table" in res.stdout and "Traceback" not in res.stderr
    assert "(cannot be run: the acme backend's mrl run option --acme-force" in res.stdout
    assert run_with_plugin(project, source, "ls").returncode == 0
    assert run_with_plugin(project, source, "ls", "--help").returncode == 0


SERIAL_CFG = {"backend": "serial", "serial": {"word": "hej"}, "command": "true"}


def test_a_config_naming_a_plugins_backend_without_plugins_leaves_the_commands_that_do_not_need_it_working(
    project: Path,
) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}, "status": done()}])
    (exp.subexp_dir(1) / "metrics.json").write_text('{"acc": 0.5}')
    set_cfg(project, run=SERIAL_CFG)
    for args in (("ls",), ("status",), ("info",), ("table",), ("--help",), ("run", "--help")):
        res = run_mrl(*args, cwd=project)
        assert res.returncode == 0, (args, res.stderr)
        assert "mrl: error" not in res.stderr and "unknown key" not in res.stderr, (args, res.stderr)
    assert "0.5" in run_mrl("table", cwd=project).stdout


@pytest.mark.parametrize(
    "args", [("run",), ("run", "--dry-run"), ("run", "--backend", "serial")], ids=["run", "dry-run", "--backend"]
)
def test_a_command_that_needs_a_plugins_backend_says_to_name_its_module_in_plugins(project: Path, args: tuple) -> None:
    make_exp(project, [{"params": {"lr": 0.1}}])
    set_cfg(project, run=SERIAL_CFG)
    errors = one_error(run_mrl(*args, cwd=project))
    assert "unknown backend 'serial'" in errors and '"plugins": ["MODULE"]' in errors, errors
    assert len(errors.splitlines()) == 1


def test_mrl_status_of_records_of_a_plugins_backend_it_cannot_load_says_what_to_add(project: Path) -> None:
    exp = make_exp(project, [{"params": {"lr": 0.1}}])
    (exp.subexp_dir(1) / ".mrl.status").write_text(
        '{"state": "running", "backend": "serial", "jobId": "7", "host": "elsewhere", "attempts": 1}'
    )
    res = run_mrl("status", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "could not ask serial: unknown backend 'serial'" in res.stdout + res.stderr
    assert '"plugins": ["MODULE"]' in res.stdout + res.stderr


DETACHED = '''
import os
import signal
import subprocess

from metarunlog.backends.base import Backend
from metarunlog.backends.registry import BackendSpec, register
from metarunlog.backends.task import task_command


class Detached(Backend):
    """Each job in a task process of its own, left running; cancel() only signals."""

    name = "detached"
    waits = False
    cancel_wait = {cancel_wait}

    def submit(self, jobs):
        for job in jobs:
            argv = task_command(self.exp.dir, str(job.sub.id), self.name, force=self.options.force)
            subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cancel(self, jobs):
        for job in jobs:
            if job.status is not None and job.status.pid:
                os.killpg(job.status.pid, signal.SIGTERM)  # returns before the step has stopped


register(BackendSpec("detached", "acme_detached:Detached", liveness=True))
'''


def detached_run(project: Path, command: str, cancel_wait: float = 15.0) -> Path:
    """A project whose `.mrl.cfg` names the plugin module (as docs/running.md says), and one
    sub-experiment it runs, seen running."""
    from tests.backends.contract import make_experiment
    from tests.helpers.processes import statuses, wait_for

    (project / "acme_detached.py").write_text(DETACHED.replace("{cancel_wait}", repr(cancel_wait)))
    set_cfg(project, plugins=["acme_detached"], run={"backend": "detached"})
    commit_all(project, "plugin")
    exp = make_experiment(project, [{"x": 1}], command)
    res = run_mrl("run", cwd=project)
    assert res.returncode == 0, res.stderr
    wait_for(lambda: statuses(exp.dir).get("001", {}).get("state") == "running", what="the step running")
    wait_for(lambda: (exp.dir / "001" / "started").exists(), what="the step's trap set")
    return exp.dir


def test_mrl_cancel_waits_for_a_plugin_backend_that_only_signals_and_reports_what_happened(project: Path) -> None:
    # the backend's cancel() returned once it had sent SIGTERM: mrl cancel printed
    # `001: running` and exit 1, as if the cancel had not worked
    exp = detached_run(project, "touch started; sleep 60")
    res = run_mrl("cancel", cwd=project)
    from tests.helpers.processes import statuses, wait_for

    wait_for(lambda: statuses(exp)["001"]["state"] != "running", what="the step's end recorded")
    record = statuses(exp)["001"]
    assert (res.returncode, res.stdout) == (0, f"001: {record['state']}\n"), (record, res.stderr)


def test_mrl_cancel_says_a_plugin_backends_job_still_runs_once_its_cancel_wait_has_passed(project: Path) -> None:
    # the step traps SIGTERM: the backend asked, it did not stop; mrl cancel says so, exit 1
    exp = detached_run(project, "trap '' TERM; touch started; sleep 60", cancel_wait=1)
    res = run_mrl("cancel", cwd=project)
    said = "001: running (asked to stop; still running after 1 s: `mrl status 1` shows when it ends)\n"
    assert (res.returncode, res.stdout) == (1, said), res.stderr
    from tests.helpers.processes import statuses

    record = statuses(exp)["001"]
    assert record["state"] == "running"
    os.killpg(record["pid"], 9)  # the test's own step, by the record that names it


def test_mrl_cancel_of_a_plugin_backend_whose_cancel_wait_is_no_number_is_one_error_line(project: Path) -> None:
    # cancel_wait = "soon" was read outside the plugin's blame: a ValueError traceback, exit 3
    from tests.helpers.processes import statuses, wait_for

    exp = detached_run(project, "touch started; sleep 60", cancel_wait="soon")  # type: ignore[arg-type]
    res = run_mrl("cancel", cwd=project)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "detached" in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr
    wait_for(lambda: statuses(exp)["001"]["state"] != "running", what="the step's end recorded (it was signalled)")


def test_a_plugin_backend_block_pinned_beside_another_backend_draws_no_unknown_key_warning(project: Path) -> None:
    # `run.backend` is local; the plugin's backend is chosen with --backend. `mrl new` pins
    # every registered backend's block (`run.inline` among them), and the commands that defer
    # the plugin imports (status, info, last) warned "unknown key 'run.inline'" about mrl's own
    # record, and about the project's block naming it.
    (project / "acme_mrl.py").write_text(LOCAL_PLUGIN)
    (project / "conf.lua").write_text("x = {{x}}\n-- MRL:grid['x'] = [1, 2]\n")
    set_cfg(project, plugins=["acme_mrl"], run={"command": 'echo "$WORD" > word.txt', "inline": {"word": "hej"}})
    commit_all(project, "plugin")
    for args in (("new", "kv"), ("makebatch",), ("run", "--backend", "inline")):
        run_mrl(*args, cwd=project, check=True)
    assert json.loads((project / "output" / "0001" / ".mrl").read_text())["run"]["inline"] == {"word": "hej"}
    for args in (("status",), ("info", "last"), ("last",), ("ls",), ("table",), ("run", "--dry-run")):
        res = run_mrl(*args, cwd=project)
        assert res.returncode == 0, (args, res.stderr)
        assert "unknown key" not in res.stderr, (args, res.stderr)
    # a typo is still said by the commands that load the plugins (status cannot tell it
    # from a plugin's block without importing them), and by every command without plugins
    set_cfg(project, run={"command": "true", "inlin": {"word": "x"}})
    assert "unknown key 'run.inlin'" in run_mrl("table", cwd=project).stderr
    set_cfg(project, plugins=[])
    assert "unknown key 'run.inlin'" in run_mrl("status", cwd=project).stderr
