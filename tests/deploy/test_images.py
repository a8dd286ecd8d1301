"""The images' Dockerfiles (no engine runs here to build them): a stripped binary, run as the
distroless non-root user."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["server", "operator"])
def test_the_image_gets_a_stripped_binary_as_non_root(name):
    text = (ROOT / "deploy" / "docker" / f"{name}.Dockerfile").read_text()
    build, _, final = text.partition("\nFROM gcr.io/distroless/cc-debian12:nonroot")
    assert final, "the final stage is distroless nonroot"
    env = dict(re.findall(r"(CARGO_PROFILE_RELEASE_\w+)=(\S+)", build))
    assert env.get("CARGO_PROFILE_RELEASE_STRIP") == "symbols", env
    assert env.get("CARGO_PROFILE_RELEASE_DEBUG") == "false", env
    assert f"cargo build --release --locked -p collab-{name}" in build
    assert "USER 65532:65532" in final
