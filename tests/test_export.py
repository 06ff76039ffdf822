"""``pfdtrain export`` and ``pfdtrain predict --model``: real tiny models, real ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is a dependency of pfdtrain export")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from pfdtrain.cli import main  # noqa: E402
from pfdtrain.data.storage import read_dataset  # noqa: E402
from pfdtrain.errors import EvaluationError  # noqa: E402
from pfdtrain.evaluation.loading import load_model_for_evaluation  # noqa: E402
from pfdtrain.evaluation.predict import predict_recording  # noqa: E402
from pfdtrain.export import exporter  # noqa: E402
from pfdtrain.export.exporter import PARITY_ATOL, export_checkpoint  # noqa: E402
from pfdtrain.export.formats import EXPORT_FORMATS, formats_markdown, load_exported  # noqa: E402
from pfdtrain.export.onnx_format import INT8_PLANS, ONNX  # noqa: E402
from pfdtrain.export.runtime import DEPLOYMENT_KEYS  # noqa: E402
from pfdtrain.models import build_model  # noqa: E402
from tests.helpers import run_cli, train_tiny_run  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained tiny run, its best checkpoint, its data file and a test recording (.npy)."""
    root = tmp_path_factory.mktemp("export")
    run_dir, checkpoint, data_path = train_tiny_run(root)
    test = read_dataset(data_path).splits["test"]
    recording = root / "recording.npy"
    np.save(recording, np.asarray(test.signals[test.record_offsets[0]:test.record_offsets[1]]))
    return {"root": root, "dir": run_dir, "checkpoint": checkpoint, "data": data_path,
            "recording": recording}


def test_onnx_export_carries_the_metadata_and_matches_pytorch(run):
    report = export_checkpoint(run["checkpoint"])
    path = Path(report["file"])
    assert path == run["dir"] / "export" / "best_model.onnx"
    proto = onnx.load_model(str(path))
    onnx.checker.check_model(proto)
    props = {p.key: p.value for p in proto.metadata_props}
    assert set(DEPLOYMENT_KEYS) <= set(props)
    _, meta = load_model_for_evaluation(run["checkpoint"], device="cpu")
    assert json.loads(props["class_names"]) == meta["class_names"]
    assert float(props["sampling_rate"]) == meta["sampling_rate"]
    assert json.loads(props["input_shape"]) == [1, meta["input_length"]]
    assert props["normalization"] == "zscore" and props["torch_version"] == torch.__version__
    assert json.loads(props["input_transform"])["name"] == "raw"
    assert report["parity"]["passed"] and report["parity"]["max_abs_logit_diff"] <= PARITY_ATOL
    assert report["parity"]["windows"] > 100  # the run's test split

    # dynamic batch: any batch size runs, and gives PyTorch's logits
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert not isinstance(session.get_inputs()[0].shape[0], int)
    model, _ = load_model_for_evaluation(run["checkpoint"], device="cpu")
    x = torch.randn(5, 1, meta["input_length"])
    with torch.no_grad():
        expected = model(x).numpy()
    for rows in (slice(0, 1), slice(0, 5)):
        got = session.run(None, {"windows": x[rows].numpy()})[0]
        np.testing.assert_allclose(got, expected[rows], atol=PARITY_ATOL)


def test_int8_export_prints_its_agreement_and_predicts_like_the_checkpoint(run):
    proc = run_cli("export", str(run["checkpoint"]), "--quantize", "int8", cwd=run["root"])
    agreement = float(proc.stdout.split("agrees with PyTorch on ")[1].split(" %")[0])
    assert agreement >= 99.0
    path = run["dir"] / "export" / "best_model.int8.onnx"
    exported = load_exported(path)
    parity = exported.metadata["parity"]
    assert exported.metadata["quantization"].startswith("int8")
    assert parity["class_agreement"] * 100 == pytest.approx(agreement, abs=0.01)
    # the plans tried, most compressed first; each one that fell short is printed with its
    # agreement (this weakly trained model loses the 99 % to quantized convolutions)
    plans = [a["plan"] for a in parity["attempts"]]
    assert plans == list(INT8_PLANS)[:len(plans)]
    assert f"int8 ({plans[-1]}): predicted class agrees" in proc.stdout
    for attempt in parity["attempts"][:-1]:
        assert attempt["class_agreement"] < 0.99
        assert (f"int8 of {attempt['plan']}: predicted class agrees on "
                f"{100 * attempt['class_agreement']:.2f} %") in proc.stdout
    # the int8 graph stores int8 weights
    assert any(t.data_type == onnx.TensorProto.INT8
               for t in onnx.load_model(str(path)).graph.initializer)


def test_predict_with_an_exported_model_equals_the_checkpoint(run):
    export_checkpoint(run["checkpoint"])
    export_checkpoint(run["checkpoint"], format="torchscript")
    reference = predict_recording(run["checkpoint"], run["recording"], sampling_rate=None)
    for model in (run["dir"] / "export" / "best_model.onnx",
                  run["dir"] / "export" / "best_model.pt"):
        result = predict_recording(None, run["recording"], model=model)
        assert result["runtime"] == ("onnx" if model.suffix == ".onnx" else "torchscript")
        for key in ("class", "class_index", "votes", "num_windows", "window_length",
                    "window_stride", "normalization", "transform", "sampling_rate",
                    "sampling_rate_source", "notes", "duration_s"):
            assert result[key] == reference[key], key
        assert [w["class"] for w in result["window_predictions"]] == \
            [w["class"] for w in reference["window_predictions"]]
        for name, p in reference["probabilities"].items():
            assert result["probabilities"][name] == pytest.approx(p, abs=1e-5)
    # and on the command line, the same printed diagnosis
    onnx_out = run_cli("predict", "--model", "runs/tiny/export/best_model.onnx",
                       "recording.npy", cwd=run["root"]).stdout
    assert onnx_out.splitlines()[0] == (f"{reference['class']}  (probability "
                                        f"{reference['probability']:.3f})")


def test_torchscript_export_writes_the_model_and_its_sidecar(run):
    report = export_checkpoint(run["checkpoint"], format="torchscript",
                               out=run["root"] / "ts" / "diagnoser.pt")
    assert report["files"] == [str(run["root"] / "ts" / "diagnoser.pt"),
                               str(run["root"] / "ts" / "diagnoser.json")]
    sidecar = json.loads((run["root"] / "ts" / "diagnoser.json").read_text())
    assert set(DEPLOYMENT_KEYS) <= set(sidecar)
    module = torch.jit.load(str(run["root"] / "ts" / "diagnoser.pt"))
    model, meta = load_model_for_evaluation(run["checkpoint"], device="cpu")
    x = torch.randn(3, 1, meta["input_length"])
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), atol=PARITY_ATOL, rtol=0)


def test_parity_windows_can_be_given(run):
    model, meta = load_model_for_evaluation(run["checkpoint"], device="cpu")
    windows = np.random.default_rng(0).standard_normal((40, meta["input_length"]))
    np.save(run["root"] / "windows.npy", windows.astype(np.float32))
    report = export_checkpoint(run["checkpoint"], windows=run["root"] / "windows.npy",
                               out=run["root"] / "given.onnx")
    assert report["parity"]["windows"] == 40 and report["parity"]["accuracy_pytorch"] is None
    np.save(run["root"] / "bad.npy", windows[:, :100])
    with pytest.raises(EvaluationError, match=r"\[N, 1024\] or \[N, channels, 1024\]"):
        export_checkpoint(run["checkpoint"], windows=run["root"] / "bad.npy")
    report = export_checkpoint(run["checkpoint"], data=run["data"], max_windows=50,
                               out=run["root"] / "data.onnx")
    assert report["parity"]["windows"] == 50


def test_a_failed_check_writes_nothing_and_keeps_the_earlier_export(run, monkeypatch):
    out = run["root"] / "kept.int8.onnx"
    export_checkpoint(run["checkpoint"], quantize="int8", out=out)
    before = out.read_bytes()
    # An agreement no model can reach: the failure path, not a weaker bar.
    monkeypatch.setattr(exporter, "INT8_MIN_AGREEMENT", 1.01)
    # every plan is tried, from the most compressed on, and each one's agreement reported
    with pytest.raises(EvaluationError, match=r"on too few of .*\(every operator: [\d.]+ %; "
                                              r"linear and recurrent layers only: [\d.]+ %; "
                                              r"required "
                                              r"101 %\); nothing was written"):
        export_checkpoint(run["checkpoint"], quantize="int8", out=out)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".kept")] == []


def test_an_operator_without_an_onnx_equivalent_is_named(tmp_path):
    # hybrid_pinn's band features filter in the complex FFT domain, which the ONNX
    # exporter cannot translate; TorchScript can carry it.
    model = build_model("hybrid_pinn", num_classes=3).eval()
    example = torch.randn(2, 1, 1024)
    with pytest.raises(EvaluationError, match=r"HybridPINN cannot be exported to ONNX: .*"
                                              r"--format torchscript"):
        ONNX.write(model, example, tmp_path / "pinn.onnx")
    assert not (tmp_path / "pinn.onnx").exists()
    EXPORT_FORMATS["torchscript"].write(model, example, tmp_path / "pinn.pt")
    run = EXPORT_FORMATS["torchscript"].runner(tmp_path / "pinn.pt")
    with torch.no_grad():
        np.testing.assert_allclose(run(example.numpy()), model(example).numpy(), atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--format", "torchscript", "--quantize", "int8"],
     "--quantize int8 is not offered for --format torchscript; available: --format onnx "
     "--quantize int8"),
    (["--out", "model.bin"], "a onnx export is a .onnx file"),
    (["--max-windows", "0"], "give at least 1 window"),
])
def test_bad_export_arguments(run, capsys, args, message):
    assert main(["export", str(run["checkpoint"]), *args]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_predict_refuses_what_it_cannot_use(run, capsys, tmp_path):
    model, meta = load_model_for_evaluation(run["checkpoint"], device="cpu")
    foreign = tmp_path / "foreign.onnx"  # a plain export: no pfdtrain metadata
    torch.onnx.export(model, (torch.randn(1, 1, meta["input_length"]),), str(foreign),
                      dynamo=True)
    cases = [
        (["predict", "--model", str(foreign), str(run["recording"])],
         "has no pfdtrain deployment metadata"),
        (["predict", "--model", str(tmp_path / "model.bin"), str(run["recording"])],
         "does not exist"),
        (["predict", str(run["checkpoint"]), str(run["recording"]), "--model", str(foreign)],
         "not both"),
        (["predict", str(run["checkpoint"]), str(run["recording"]), str(run["recording"])],
         "got 3 paths"),
        (["predict", str(run["recording"])], "give a checkpoint"),
        (["predict", "--model", str(run["dir"] / "export" / "best_model.onnx"),
          str(run["recording"]), "--adapt-bn"], "Predict with the checkpoint instead"),
    ]
    export_checkpoint(run["checkpoint"])
    (tmp_path / "model.txt").write_text("x")
    cases.append((["predict", "--model", str(tmp_path / "model.txt"), str(run["recording"])],
                  "not an exported model"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in " ".join(err.split()), (argv, err)


def test_a_recording_with_several_signals_names_predicts_flag(run, capsys, tmp_path):
    signal = np.load(run["recording"])
    scipy.io.savemat(tmp_path / "two.mat", {"X001_DE_time": signal[:, None],
                                            "X001_FE_time": signal[:, None]})
    assert main(["predict", str(run["checkpoint"]), str(tmp_path / "two.mat")]) == 2
    assert "pfdtrain predict --variable DE" in " ".join(capsys.readouterr().err.split())


def test_readme_lists_every_export_format():
    assert formats_markdown() in README.read_text(encoding="utf-8")


def test_the_readmes_onnx_runtime_snippet_gives_predicts_first_window(run, capsys, monkeypatch):
    text = README.read_text(encoding="utf-8")
    start = text.index("**Without pfdtrain**")
    snippet = text[text.index("```python\n", start) + len("```python\n"):]
    snippet = snippet[:snippet.index("```")]
    export_checkpoint(run["checkpoint"])
    monkeypatch.chdir(run["dir"] / "export")
    signal = np.load(run["recording"])
    exec(snippet, {"signal": signal})  # noqa: S102 - the README's own code, run as a user would
    printed = capsys.readouterr().out.strip()
    expected = predict_recording(run["checkpoint"], run["recording"])["window_predictions"][0]
    assert printed == expected["class"]
