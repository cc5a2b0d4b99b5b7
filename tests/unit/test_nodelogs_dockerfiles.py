"""Docker nodes, copy through a node pod: the live file of each N.log link lands at N.log, the rotated ones stay
under docker/containers/ID/, and one restart's files are one decoded instance (lab, Docker mode:
test_every_line_of_every_instance_and_rotation_comes_back[pod] found the pod's folder empty)."""

from __future__ import annotations

from pathlib import Path

from kubectl_debugx.commands.nodelogs import dockerfiles
from kubectl_debugx.formats.logfiles import Instance, LogPlan, Skipped, plan_container_logs
from kubectl_debugx.formats.logtree import ExtractedFile, ExtractReport

POD_DIR = "shop_web_0b5c"
OLD, NEW, GONE = "a" * 64, "b" * 64, "c" * 64


def link(container_id: str) -> str:
    return f"/var/lib/docker/containers/{container_id}/{container_id}-json.log"


def skipped_link(path: str, container_id: str) -> Skipped:
    return Skipped(path, f"symbolic link to {link(container_id)}, outside the log tree")


def test_the_links_name_each_restarts_container_id():
    report = ExtractReport((), (), (), (
        (f"{POD_DIR}/web/0.log", link(OLD)),
        (f"{POD_DIR}/web/1.log", link(NEW)),
        (f"{POD_DIR}/side/0.log", link(GONE)),
        (f"{POD_DIR}/web/2.log", "/elsewhere/x-json.log"),  # not Docker's: not a mapping
        (f"{POD_DIR}/web/x.log", link(GONE)),  # not N.log
        ("other_pod/web/0.log", link(GONE)),  # another pod's folder
    ))
    assert dockerfiles.linked_ids(report, POD_DIR) == {"web": {OLD: 0, NEW: 1}, "side": {GONE: 0}}


def test_each_live_file_moves_to_its_link_and_rotated_ones_stay(tmp_path: Path):
    docker = tmp_path / "docker" / "containers"
    (tmp_path / POD_DIR / "web").mkdir(parents=True)
    for container_id, names in ((OLD, ["-json.log"]), (NEW, ["-json.log", "-json.log.1", "-json.log.2"])):
        (docker / container_id).mkdir(parents=True)
        for name in names:
            (docker / container_id / f"{container_id}{name}").write_bytes(f"{container_id[0]}{name}\n".encode())
    report = ExtractReport(
        (ExtractedFile(f"docker/containers/{OLD}/{OLD}-json.log", 11),
         ExtractedFile(f"docker/containers/{NEW}/{NEW}-json.log", 11),
         ExtractedFile(f"docker/containers/{NEW}/{NEW}-json.log.1", 13),
         ExtractedFile(f"docker/containers/{NEW}/{NEW}-json.log.2", 13)),
        (f"{POD_DIR}", f"{POD_DIR}/web"),
        (skipped_link(f"{POD_DIR}/web/0.log", OLD), skipped_link(f"{POD_DIR}/web/1.log", NEW),
         Skipped(f"{POD_DIR}/web/9.log", "symbolic link to /gone, outside the log tree")),
        ((f"{POD_DIR}/web/0.log", link(OLD)), (f"{POD_DIR}/web/1.log", link(NEW)),
         (f"{POD_DIR}/web/9.log", "/gone")),
    )
    placed = dockerfiles.place_live_files(tmp_path, report, POD_DIR, {"web": {OLD: 0, NEW: 1}})
    assert placed == ExtractReport(
        (ExtractedFile(f"{POD_DIR}/web/0.log", 11),
         ExtractedFile(f"{POD_DIR}/web/1.log", 11),
         ExtractedFile(f"docker/containers/{NEW}/{NEW}-json.log.1", 13),
         ExtractedFile(f"docker/containers/{NEW}/{NEW}-json.log.2", 13)),
        (f"{POD_DIR}", f"{POD_DIR}/web"),
        (Skipped(f"{POD_DIR}/web/9.log", "symbolic link to /gone, outside the log tree"),),
        ((f"{POD_DIR}/web/9.log", "/gone"),),
    )
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        f"docker/containers/{NEW}/{NEW}-json.log.1", f"docker/containers/{NEW}/{NEW}-json.log.2",
        f"{POD_DIR}/web/0.log", f"{POD_DIR}/web/1.log"]
    assert (tmp_path / POD_DIR / "web" / "1.log").read_bytes() == b"b-json.log\n"
    assert not (docker / OLD).exists()  # emptied, removed


def test_nothing_rotated_leaves_no_docker_folder(tmp_path: Path):
    (tmp_path / POD_DIR / "web").mkdir(parents=True)
    (tmp_path / "docker" / "containers" / OLD).mkdir(parents=True)
    (tmp_path / "docker" / "containers" / OLD / f"{OLD}-json.log").write_bytes(b"x\n")
    report = ExtractReport((ExtractedFile(f"docker/containers/{OLD}/{OLD}-json.log", 2),), (),
                           (skipped_link(f"{POD_DIR}/web/0.log", OLD),), ((f"{POD_DIR}/web/0.log", link(OLD)),))
    assert dockerfiles.place_live_files(tmp_path, report, POD_DIR, {"web": {OLD: 0}}) == ExtractReport(
        (ExtractedFile(f"{POD_DIR}/web/0.log", 2),), (), (), ())
    assert sorted(p.name for p in tmp_path.iterdir()) == [POD_DIR]


def test_one_restarts_link_and_rotated_docker_files_are_one_instance():
    names = ["0.log", "1.log", f"{NEW}-json.log.1", f"{NEW}-json.log.2", f"{OLD}-json.log.1", f"{GONE}-json.log.1"]
    assert plan_container_logs(names, {OLD: 0, NEW: 1}) == LogPlan((
        Instance(0, OLD, (f"{OLD}-json.log.1", "0.log")),
        Instance(1, NEW, (f"{NEW}-json.log.2", f"{NEW}-json.log.1", "1.log")),
        Instance(None, GONE, (f"{GONE}-json.log.1",)),
    ))


def test_dockers_live_file_beside_its_link_is_read_once():
    assert plan_container_logs(["0.log", f"{OLD}-json.log", f"{OLD}-json.log.1"], {OLD: 0}) == LogPlan(
        (Instance(0, OLD, (f"{OLD}-json.log.1", "0.log")),),
        (Skipped(f"{OLD}-json.log", "same content as 0.log, a symbolic link to it"),),
    )
