"""minidl.data datasets and downloads: IDX, Fashion-MNIST, CIFAR-10 binary, ImageFolder, download, extract_tar."""
import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

import minidl.data as D
from minidl.data import cifar, fashion_mnist
from minidl.data.download import ChecksumError, DatasetNotFoundError, extract_tar
from minidl.data.idx import IDXError, read_idx, write_idx
from PIL import Image


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the real user cache; by default the system Fashion-MNIST directory is hidden."""
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-dir")


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, gz, dtype):
    a = (np.arange(3 * 5 * 7).reshape(3, 5, 7) - 11).astype(dtype)
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_layout_by_hand(tmp_path):
    # magic 0x00000801: uint8, rank 1, size 3 -> independent of write_idx
    (tmp_path / "l").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), [7, 8, 9])
    # gzip recognised by its magic bytes, not the file name
    (tmp_path / "no-suffix").write_bytes(gzip.compress(bytes([0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 5, 6])))
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), [[5, 6]])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path, gz):
    full = write_idx(tmp_path / "full", np.zeros((4, 6, 6), np.uint8), compress=False).read_bytes()
    bad = tmp_path / ("cut.gz" if gz else "cut")
    bad.write_bytes(gzip.compress(full[:-5]) if gz else full[:-5])
    with pytest.raises(IDXError, match=r"cut.*truncated.*\(4, 6, 6\)"):
        read_idx(bad)
    bad.write_bytes(full[:10])    # inside the header
    with pytest.raises(IDXError, match="cut.*truncated"):
        read_idx(bad)


def test_idx_truncated_gzip_stream(tmp_path):
    data = gzip.compress(bytes(range(200)) * 50)
    bad = tmp_path / "stream.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXError, match="stream.gz.*truncated or corrupt gzip"):
        read_idx(bad)


def test_idx_bad_magic_and_padding(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(IDXError, match="bad.*wrong magic number 0x504b0304"):
        read_idx(p)
    p.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 0]))     # unknown element type
    with pytest.raises(IDXError, match="wrong magic"):
        read_idx(p)
    p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]))  # one byte too many
    with pytest.raises(IDXError, match="longer than its header"):
        read_idx(p)
    p.write_bytes(b"\x00")
    with pytest.raises(IDXError, match="truncated"):
        read_idx(p)


# ----------------------------------------------------------------------------- download / extract

def test_download_file_url_good_and_bad_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3000))
    url = src.as_uri()
    sha, m5 = hashlib.sha256(src.read_bytes()).hexdigest(), md5(src)

    out = D.download(url, tmp_path / "dl" / "a.bin", sha256=sha)
    assert out.read_bytes() == src.read_bytes()
    assert D.download(url, tmp_path / "dl" / "b.bin", md5=m5.upper()).read_bytes() == src.read_bytes()

    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        D.download(url, tmp_path / "dl" / "c.bin", sha256=wrong)
    assert "c.bin" in str(e.value) and wrong in str(e.value) and sha in str(e.value)
    assert not (tmp_path / "dl" / "c.bin").exists()
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["a.bin", "b.bin"]   # no temporary left

    src.unlink()   # an existing file with the right checksum is not fetched again
    assert D.download(url, tmp_path / "dl" / "a.bin", sha256=sha).is_file()


def test_download_needs_one_checksum(tmp_path):
    with pytest.raises(ValueError, match="checksum is required"):
        D.download("file:///nonexistent", tmp_path / "x")
    with pytest.raises(ValueError, match="not both"):
        D.download("file:///nonexistent", tmp_path / "x", sha256="a", md5="b")


def test_download_missing_source_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        D.download((tmp_path / "absent").as_uri(), tmp_path / "dl" / "x", md5="0" * 32)
    assert list((tmp_path / "dl").iterdir()) == []


def _tar(path, members):
    """members: list of (TarInfo-ish name, bytes or None for a symlink)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_tar_refuses_traversal_and_links(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [("d/ok.txt", b"ok"), ("../evil.txt", b"x")])
    with pytest.raises(ValueError, match=r"unsafe member '\.\./evil\.txt'"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert extract_tar(archive, tmp_path / "out2", wanted=["d/ok.txt"]) == [(tmp_path / "out2/d/ok.txt").resolve()]
    assert (tmp_path / "out2/d/ok.txt").read_bytes() == b"ok"

    for name, data in [("/abs.txt", b"x"), ("link", None)]:
        bad = _tar(tmp_path / "b.tar.gz", [(name, data)])
        with pytest.raises(ValueError, match="refusing"):
            extract_tar(bad, tmp_path / "out3")
    with pytest.raises(ValueError, match="lacks the members"):
        extract_tar(archive, tmp_path / "out4", wanted=["d/missing.txt"])


# ----------------------------------------------------------------------------- Fashion-MNIST

def _fake_fashion(directory, n=7, gz=True, train=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    stems = fashion_mnist.split_files(train)
    Path(directory).mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(Path(directory) / (stems[0] + suffix), images)
    write_idx(Path(directory) / (stems[1] + suffix), labels)
    return images, labels


def _raw_md5(directory, train=True):
    out = {}
    for stem in fashion_mnist.split_files(train):
        p = fashion_mnist.find_file(directory, stem)
        out[stem] = hashlib.md5(D.idx.read_idx_bytes(p)).hexdigest()
    return out


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_fashion_mnist_reads_root(tmp_path, gz, train):
    images, labels = _fake_fashion(tmp_path / "fm", gz=gz, train=train)
    ds = D.FashionMNIST(tmp_path / "fm", train=train, download=False, verify=False)
    assert ds.images.shape == (7, 1, 28, 28) and ds.images.dtype == np.uint8
    assert ds.targets.dtype == np.int64 and len(ds) == 7
    np.testing.assert_array_equal(ds.images[:, 0], images)
    np.testing.assert_array_equal(ds.targets, labels)
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and isinstance(y, int) and y == labels[3]
    assert len(ds.classes) == 10 and ds.classes[9] == "Ankle boot"


def test_fashion_mnist_checksum_error_names_file_and_both(tmp_path, monkeypatch):
    _fake_fashion(tmp_path / "fm")
    with pytest.raises(ChecksumError) as e:
        D.FashionMNIST(tmp_path / "fm", download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and fashion_mnist.RAW_MD5["train-images-idx3-ubyte"] in msg
    assert _raw_md5(tmp_path / "fm")["train-images-idx3-ubyte"] in msg
    # with the generated files' checksums as the published ones, verification passes
    monkeypatch.setattr(fashion_mnist, "RAW_MD5", _raw_md5(tmp_path / "fm"))
    assert len(D.FashionMNIST(tmp_path / "fm", download=False)) == 7


def test_fashion_mnist_search_order(tmp_path, monkeypatch):
    _fake_fashion(tmp_path / "system", n=3)
    _fake_fashion(tmp_path / "cache" / "fashion-mnist", n=4)
    _fake_fashion(tmp_path / "root", n=5)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    assert len(D.FashionMNIST(tmp_path / "root", download=False, verify=False)) == 5
    assert len(D.FashionMNIST(download=False, verify=False)) == 3
    (tmp_path / "empty").mkdir()
    for given in ("empty", "missing"):      # a root given is that directory or an error, never the system copy
        with pytest.raises(DatasetNotFoundError, match=given):
            D.FashionMNIST(tmp_path / given, download=False, verify=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "absent")
    assert len(D.FashionMNIST(download=False, verify=False)) == 4


def test_fashion_mnist_missing_data_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "MIRRORS", [(tmp_path / "mirror").as_uri() + "/"])
    for download in (False, True):
        with pytest.raises(DatasetNotFoundError) as e:
            D.FashionMNIST(tmp_path / "myroot", download=download)
        msg = str(e.value)
        for place in (tmp_path / "myroot", tmp_path / "myroot" / "FashionMNIST" / "raw"):
            assert str(place) in msg
        looked = msg.split("To get the data")[0]
        for place in (tmp_path / "no-system-dir", tmp_path / "cache" / "fashion-mnist"):   # root given: only there
            assert str(place) not in looked
        assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg
        assert ("download into" in msg) == download
    with pytest.raises(DatasetNotFoundError) as e:
        D.FashionMNIST(download=False)
    for place in (tmp_path / "no-system-dir", tmp_path / "cache" / "fashion-mnist"):
        assert str(place) in str(e.value)


def test_fashion_mnist_downloads_into_cache(tmp_path, monkeypatch):
    _fake_fashion(tmp_path / "mirror", n=6, train=False)
    gz = {s: md5(tmp_path / "mirror" / (s + ".gz")) for s in fashion_mnist.split_files(False)}
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ["file:///nonexistent-mirror/", (tmp_path / "mirror").as_uri() + "/"])
    monkeypatch.setattr(fashion_mnist, "GZ_MD5", gz)
    monkeypatch.setattr(fashion_mnist, "RAW_MD5", _raw_md5(tmp_path / "mirror", train=False))
    ds = D.FashionMNIST(train=False)
    assert len(ds) == 6 and ds.root == tmp_path / "cache" / "fashion-mnist"
    assert sorted(p.name for p in ds.root.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_real_fashion_mnist_checksums():
    """The real files from `apt-get install dataset-fashion-mnist`: must run on CI."""
    system = Path("/usr/share/datasets/fashion-mnist")
    if not system.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {system} is absent: install it with apt-get install dataset-fashion-mnist")
        pytest.skip(f"{system} absent (apt-get install dataset-fashion-mnist)")
    for stem, expected in fashion_mnist.RAW_MD5.items():
        path = fashion_mnist.find_file(system, stem)
        assert path is not None, f"{system} lacks {stem}[.gz]"
        assert hashlib.md5(D.idx.read_idx_bytes(path)).hexdigest() == expected, path
    test = D.FashionMNIST(system, train=False, download=False)     # verifies the checksums again
    assert test.images.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(test.targets), [1000] * 10)   # the published test split is balanced


# ----------------------------------------------------------------------------- CIFAR-10 (binary)

def _fake_cifar(directory, per_batch=3, seed=0, meta=True):
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    records = {}
    for name in cifar.TRAIN_FILES + cifar.TEST_FILES:
        rec = rng.integers(0, 256, (per_batch, 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, per_batch)
        (directory / name).write_bytes(rec.tobytes())
        records[name] = rec
    if meta:
        (directory / cifar.META).write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    return records


def _expected(records, names):
    rec = np.concatenate([records[n] for n in names])
    # record = label, then 1024 R, 1024 G, 1024 B bytes, each plane row-major
    images = np.stack([np.stack([r[1 + 1024 * c: 1 + 1024 * (c + 1)].reshape(32, 32) for c in range(3)]) for r in rec])
    return images, rec[:, 0].astype(np.int64)


@pytest.mark.parametrize("train", [True, False])
def test_cifar_binary_reader(tmp_path, train):
    records = _fake_cifar(tmp_path / "cifar-10-batches-bin")
    ds = D.CIFAR10(tmp_path, train=train, download=False)
    images, labels = _expected(records, cifar.TRAIN_FILES if train else cifar.TEST_FILES)
    assert ds.images.shape == ((15 if train else 3), 3, 32, 32) and ds.images.dtype == np.uint8
    assert ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert ds.classes[4] == "class4"
    x, y = ds[2]
    assert x.shape == (3, 32, 32) and y == labels[2]


def test_cifar_default_classes_and_root_is_batch_dir(tmp_path):
    _fake_cifar(tmp_path / "b", meta=False)
    ds = D.CIFAR10(tmp_path / "b", train=False, download=False)
    assert ds.classes == cifar.CLASSES


def test_cifar_truncated_and_bad_label(tmp_path):
    _fake_cifar(tmp_path)
    p = tmp_path / "test_batch.bin"
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ValueError, match="test_batch.bin has 9218 bytes.*3073"):
        D.CIFAR10(tmp_path, train=False, download=False)
    rec = np.zeros((2, 3073), np.uint8)
    rec[1, 0] = 10
    p.write_bytes(rec.tobytes())
    with pytest.raises(ValueError, match="test_batch.bin record 1 has label 10"):
        D.CIFAR10(tmp_path, train=False, download=False)


def test_cifar_download_and_safe_extract(tmp_path, monkeypatch):
    records = _fake_cifar(tmp_path / "src" / "cifar-10-batches-bin")
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))      # not a wanted member: never extracted
    monkeypatch.setattr(cifar, "URL", archive.as_uri())
    monkeypatch.setattr(cifar, "MD5", md5(archive))
    ds = D.CIFAR10(train=False)
    np.testing.assert_array_equal(ds.images, _expected(records, cifar.TEST_FILES)[0])
    cache = tmp_path / "cache" / "cifar-10"
    assert not (cache / cifar.ARCHIVE).exists() and not (tmp_path / "cache" / "outside.txt").exists()
    assert len(D.CIFAR10(train=True, download=False)) == 15

    monkeypatch.setattr(cifar, "MD5", "0" * 32)    # a corrupt download is an error naming both checksums
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache2"))
    with pytest.raises(ChecksumError, match=f"expected md5 {'0' * 32}, got {md5(archive)}"):
        D.CIFAR10(train=False)


def test_cifar_missing_lists_places(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "URL", (tmp_path / "absent.tar.gz").as_uri())
    with pytest.raises(DatasetNotFoundError) as e:
        D.CIFAR10(tmp_path / "r", train=False)
    msg = str(e.value)
    for place in (tmp_path / "r", tmp_path / "r" / "cifar-10-batches-bin"):
        assert str(place) in msg
    assert str(tmp_path / "cache" / "cifar-10") not in msg      # a root given is the only place looked in
    assert "download of" in msg and "root=" in msg


# ----------------------------------------------------------------------------- ImageFolder

def _folder(root, sizes=((5, 7), (5, 7), (5, 7))):
    rng = np.random.default_rng(0)
    arrays = {}
    specs = [("cat", "a.png", "RGB"), ("cat", "b.JPG", "RGB"), ("dog", "c.png", "L")]
    for (cls, name, mode), (h, w) in zip(specs, sizes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
        Image.fromarray(a, mode).save(root / cls / name, **({"quality": 95} if name.endswith("JPG") else {}))
        arrays[name] = a
    (root / "dog" / "notes.txt").write_text("not an image")
    return arrays


def test_image_folder_lists_and_decodes(tmp_path):
    arrays = _folder(tmp_path)
    ds = D.ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 3
    assert [(Path(p).name, t) for p, t in ds.samples] == [("a.png", 0), ("b.JPG", 0), ("c.png", 1)]
    assert ds.targets.dtype == np.int64 and ds.targets.tolist() == [0, 0, 1]
    x, y = ds[0]
    assert x.dtype == np.uint8 and y == 0
    np.testing.assert_array_equal(x, arrays["a.png"].transpose(2, 0, 1))       # PNG is lossless
    g, _ = ds[2]                                                                # grey -> RGB, 3 equal channels
    np.testing.assert_array_equal(g, np.stack([arrays["c.png"]] * 3))
    jpeg, _ = ds[1]
    assert jpeg.shape == (3, 5, 7)
    xb, yb = ds.load_batch([2, 0])
    assert xb.shape == (2, 3, 5, 7) and yb.tolist() == [1, 0] and yb.dtype == np.int64
    np.testing.assert_array_equal(xb[1], x)


def test_image_folder_resize(tmp_path):
    _folder(tmp_path, sizes=((5, 7), (9, 4), (6, 6)))
    with pytest.raises(ValueError, match="different sizes.*pass size="):
        D.ImageFolder(tmp_path).load_batch([0, 1, 2])
    ds = D.ImageFolder(tmp_path, size=(8, 10))
    xb, _ = ds.load_batch([0, 1, 2])
    assert xb.shape == (3, 3, 8, 10)
    with Image.open(ds.samples[1][0]) as im:
        expected = np.asarray(im.convert("RGB").resize((10, 8), Image.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(xb[1], expected)
    assert D.ImageFolder(tmp_path, size=4)[0][0].shape == (3, 4, 4)


def test_image_folder_corrupt_file_is_an_error_naming_it(tmp_path):
    _folder(tmp_path)
    bad = tmp_path / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    ds = D.ImageFolder(tmp_path)
    i = [Path(p).name for p, _ in ds.samples].index("broken.jpg")
    with pytest.raises(ValueError, match="cannot decode image file .*broken.jpg"):
        ds[i]
    with pytest.raises(ValueError, match="broken.jpg"):
        ds.load_batch(range(len(ds)))
    assert [Path(p).name for p, _ in ds.find_unreadable()] == ["broken.jpg"]


def test_image_folder_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        D.ImageFolder(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no class sub-directories"):
        D.ImageFolder(tmp_path)
    (tmp_path / "c").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        D.ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="size must be positive"):
        D.ImageFolder(tmp_path, size=0)
    with pytest.raises(TypeError, match="size must be an int or a pair"):
        D.ImageFolder(tmp_path, size="big")


def test_image_folder_through_the_loader(tmp_path):
    _folder(tmp_path, sizes=((5, 7), (9, 4), (6, 6)))
    ds = D.ImageFolder(tmp_path, size=6)
    batches = [(x.numpy(), y.numpy()) for x, y in D.DataLoader(ds, batch_size=2, shuffle=True, prefetch=1).epoch(0)]
    assert [x.shape for x, _ in batches] == [(2, 3, 6, 6), (1, 3, 6, 6)]
    assert sorted(np.concatenate([y for _, y in batches]).tolist()) == [0, 0, 1]
    x0, y0 = batches[0]
    i = int(np.random.default_rng([0, 0, 0]).permutation(3)[0])
    np.testing.assert_array_equal(x0[0], ds[i][0].astype(np.float32) / np.float32(255))
