"""``invoke export-c``: the C array holds exactly the .tflite bytes; the filter header holds the cascade."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from bundle_factory import build_bundle

from convert.export_c import MODEL_SYMBOL, main, parse_c_byte_array
from edge.bundle import MODEL_FILE
from edge.errors import run_cli


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("export")
    made = build_bundle(folder)
    out = folder / "c"
    assert run_cli(main, ["--bundle", str(made["bundle"]), "--out", str(out)]) == 0
    return {**made, "out": out}


def test_the_c_array_bytes_equal_the_tflite_file(exported) -> None:
    source = (exported["out"] / "model_data.cc").read_text()
    model = (exported["bundle"] / MODEL_FILE).read_bytes()
    assert parse_c_byte_array(source, MODEL_SYMBOL) == model
    assert f"alignas(16) const unsigned char {MODEL_SYMBOL}[]" in source
    assert f"const unsigned int {MODEL_SYMBOL}_size = {len(model)};" in source
    assert f"extern const unsigned char {MODEL_SYMBOL}[];" in (exported["out"] / "model_data.h").read_text()


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_the_c_sources_compile_and_hold_the_model_and_filter(exported, tmp_path) -> None:
    (tmp_path / "arm_math.h").write_text("#include <stdint.h>\ntypedef int32_t q31_t;\ntypedef int16_t q15_t;\n")
    program = tmp_path / "dump.cc"
    program.write_text('#include <cstdio>\n#include <cstdint>\n#include "model_data.h"\n#include "filter_coeffs.h"\n'
                       "int main() {\n"
                       "  const unsigned per_stage = sizeof(hotspot_filter_coeffs[0]) == 4 ? 5 : 6;\n"
                       "  if (sizeof(hotspot_filter_coeffs) / sizeof(hotspot_filter_coeffs[0])\n"
                       "      != HOTSPOT_FILTER_NUM_STAGES * per_stage) return 4;\n"
                       f"  if (reinterpret_cast<std::uintptr_t>({MODEL_SYMBOL}) % 16) return 3;\n"
                       f"  fwrite({MODEL_SYMBOL}, 1, {MODEL_SYMBOL}_size, stdout);\n  return 0;\n}}\n")
    binary = tmp_path / "dump"
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Werror", "-I", str(exported["out"]), "-I", str(tmp_path),
                    str(program), str(exported["out"] / "model_data.cc"), "-o", str(binary)], check=True)
    result = subprocess.run([str(binary)], capture_output=True, check=True)
    assert result.stdout == (exported["bundle"] / MODEL_FILE).read_bytes()


def test_the_filter_header_holds_the_pipeline_cascade(exported) -> None:
    header = (exported["out"] / "filter_coeffs.h").read_text()
    fixed = exported["spec"].filter
    defines = dict(re.findall(r"#define HOTSPOT_FILTER_(\w+) (\S+)", header))
    assert int(defines["NUM_STAGES"]) == fixed.n_stages
    assert int(defines["POST_SHIFT"]) == fixed.post_shift
    assert int(defines["N_CHANNELS"]) == len(exported["spec"].channels)
    body = re.search(r"hotspot_filter_coeffs\[(\d+)\] = \{([^}]*)\}", header)
    assert int(body.group(1)) == len(fixed.coeffs)
    assert tuple(int(value) for value in body.group(2).replace("\n", " ").split(",")) == fixed.coeffs
    assert f"arm_biquad_cascade_df1_init_{fixed.q_format}" in header


def test_a_bundle_whose_model_was_replaced_is_not_exported(exported, tmp_path, capsys) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(exported["bundle"], bundle)
    (bundle / MODEL_FILE).write_bytes(b"\x00" * 64)
    assert run_cli(main, ["--bundle", str(bundle), "--out", str(tmp_path / "c")]) == 2
    assert "does not match its sha256" in capsys.readouterr().err
