"""md.save / md.load: state dicts and nested containers round-trip through .npz without pickle;
anything else is refused with a clear error."""
import io
import zipfile

import numpy as np
import pytest

import minidl as md
from minidl import nn


def small_model():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_model_state_dict_round_trip(tmp_path):
    model, other = small_model(), small_model()
    path = tmp_path / "model.pt"
    md.save(model.state_dict(), path)
    assert path.exists() and not (tmp_path / "model.pt.npz").exists()   # written exactly at the path
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())  # plain arrays, no pickle
    loaded = md.load(path)
    assert list(loaded) == list(model.state_dict())
    other.load_state_dict(loaded)
    x = md.randn(5, 4)
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_nested_containers_keep_types_and_values(tmp_path):
    w = md.tensor([[1.0, 2.0]], requires_grad=True)
    obj = {"epoch": 7, "loss": float("nan"), "best": 0.25, "name": "run", "done": False, "note": None,
           "weights": {"w": w, "counts": np.arange(3, dtype=np.int32), "scalar": np.float64(1.5)},
           "history": [1.0, 0.5], "betas": (0.9, 0.999), 3: "int key"}
    md.save(obj, tmp_path / "ckpt.npz")
    got = md.load(tmp_path / "ckpt.npz")
    assert got["epoch"] == 7 and np.isnan(got["loss"]) and got["best"] == 0.25 and got["name"] == "run"
    assert got["done"] is False and got["note"] is None and got["history"] == [1.0, 0.5]
    assert got["betas"] == (0.9, 0.999) and got[3] == "int key"
    assert isinstance(got["weights"]["w"], md.Tensor) and got["weights"]["w"].requires_grad
    assert got["weights"]["w"].tolist() == [[1.0, 2.0]] and got["weights"]["w"].dtype == np.float32
    assert got["weights"]["counts"].dtype == np.int32 and got["weights"]["counts"].tolist() == [0, 1, 2]
    assert got["weights"]["scalar"] == 1.5 and isinstance(got["weights"]["scalar"], np.float64)


def test_optimizer_state_dict_round_trip(tmp_path):
    model = small_model()
    opt = md.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(md.randn(2, 4)).sum().backward()
    opt.step()
    buf = io.BytesIO()   # file objects work too
    md.save(opt.state_dict(), buf)
    buf.seek(0)
    again = md.optim.SGD(small_model().parameters(), lr=0.5, momentum=0.9)
    again.load_state_dict(md.load(buf))
    assert again.param_groups[0]["lr"] == 0.1
    saved, restored = opt.state_dict(), again.state_dict()
    for index in saved["state"]:
        for key, value in saved["state"][index].items():
            np.testing.assert_array_equal(restored["state"][index][key], value)


def test_single_tensor_and_map_location(tmp_path):
    md.save(md.arange(4), tmp_path / "t")
    for kwargs in ({}, {"map_location": "cpu"}, {"map_location": md.device("cpu")}, {"weights_only": True}):
        t = md.load(tmp_path / "t", **kwargs)
        assert t.tolist() == [0, 1, 2, 3] and t.dtype == np.int64 and t.device == "cpu"
    with pytest.raises(TypeError, match="map_location"):
        md.load(tmp_path / "t", map_location=lambda storage, loc: storage)
    with pytest.raises(TypeError, match="weights_only"):
        md.load(tmp_path / "t", weights_only="yes")


@pytest.mark.skipif(md.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_map_location_cuda_without_gpu(tmp_path):
    md.save({"w": md.ones(2)}, tmp_path / "t")
    with pytest.raises(RuntimeError, match="not available"):
        md.load(tmp_path / "t", map_location="cuda")


def test_refuses_what_would_need_pickle(tmp_path):
    with pytest.raises(TypeError, match=r"model.state_dict\(\)"):
        md.save(small_model(), tmp_path / "m")
    with pytest.raises(TypeError, match="obj\\['opt'\\] is a SGD"):
        md.save({"opt": md.optim.SGD(small_model().parameters(), lr=0.1)}, tmp_path / "m")
    with pytest.raises(TypeError, match="object"):
        md.save({"x": object()}, tmp_path / "m")
    with pytest.raises(TypeError, match="Python objects"):
        md.save(np.array([{}, 1], dtype=object), tmp_path / "m")
    with pytest.raises(TypeError, match="keys must be str or int"):
        md.save({(1, 2): 3}, tmp_path / "m")


def test_load_of_other_files_names_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not a file written by md.save"):
        md.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(ValueError, match="plain.npz is an .npz archive but was not written by md.save"):
        md.load(plain)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(2))
    with pytest.raises(ValueError, match="single.npy is a single .npy array"):
        md.load(single)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled.npy"):
        md.load(pickled)
    with pytest.raises(FileNotFoundError):
        md.load(tmp_path / "missing.pt")
