"""`igkd info` without --config shows the models of ./config.yaml, as `snakemake` run in the
same folder would build them; --config replaces it; with neither, the schema's defaults."""

from __future__ import annotations

import yaml

from igkd.cli import main

REQUIRED = ("teacher", "precompute", "students", "runtime")  # the schema's required sections


def _write_config(folder, **sections) -> None:
    config = {"dataset": {"name": "digits", "image_size": 16}, **{key: {} for key in REQUIRED}, **sections}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


def _header(capsys) -> str:
    return capsys.readouterr().out.splitlines()[0]


def test_info_reads_the_folders_config_yaml_unless_config_names_files(tmp_path, monkeypatch, capsys):
    _write_config(tmp_path, teacher={"width": 0.5}, students={"width": 0.5})
    monkeypatch.chdir(tmp_path)
    assert main(["info"]) == 0
    assert _header(capsys) == "10 classes, 16x16 inputs, teacher width 0.5, student width 0.5"

    other = tmp_path / "other"
    other.mkdir()
    _write_config(other, teacher={"width": 0.75}, students={"width": 0.75})
    assert main(["info", "--config", str(other / "config.yaml")]) == 0
    assert _header(capsys) == "10 classes, 16x16 inputs, teacher width 0.75, student width 0.75"

    monkeypatch.chdir(other)
    (other / "config.yaml").unlink()  # a folder without one: the schema's defaults
    assert main(["info"]) == 0
    assert _header(capsys) == "10 classes, 32x32 inputs, teacher width 1.0, student width 1.0"
