"""`badnet-repair classify`: PNG, JPEG and h5 inputs, B' and G, and its errors."""
import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from badnet_repair import cli, h5data
from badnet_repair.evaluate import predict_classes
from badnet_repair.model import build_deepid, keras, save_model
from badnet_repair.pruning import prune
from badnet_repair.repaired import build_repaired

N = 10


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue().splitlines(), err.getvalue().splitlines()


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """B, a B' with half of conv_3 pruned (so B and B' disagree on some images) and G,
    exported as the pipeline does, with models/badnet.json giving the input divisor."""
    root = tmp_path_factory.mktemp("cls")
    keras.utils.set_random_seed(3)
    b = build_deepid(N)
    bp = prune(b, "pool_3", range(0, 60, 2))
    save_model(b, root / "models/badnet.h5")
    save_model(bp, root / "models/variants/pruned_2.h5")
    save_model(build_repaired(b, bp), root / "models/variants/repaired_2.keras")
    (root / "models/badnet.json").write_text(json.dumps({"input_divisor": 255.0, "num_classes": N}))
    x = np.random.default_rng(0).integers(0, 256, (40, 55, 47, 3)).astype(np.uint8)
    return root, b, bp, x


def test_png_and_h5_give_g_batch_classes(nets, tmp_path):
    root, b, bp, x = nets
    g_path = root / "models/variants/repaired_2.keras"
    g = keras.models.load_model(g_path, safe_mode=True)
    expect = predict_classes(g, x, 255.0)
    assert (expect == N).any() and (expect < N).any()  # both answers occur
    pngs = []
    for i, img in enumerate(x):
        pngs.append(tmp_path / f"img{i}.png")
        Image.fromarray(img).save(pngs[-1])
    code, out, err = run("classify", str(g_path), *map(str, pngs))
    assert code == 0, err
    assert out == [f"{p}\t{int(c)}" for p, c in zip(pngs, expect)]
    h5data.write(tmp_path / "x.h5", x, np.zeros(len(x), np.int64))
    code, out, _ = run("classify", str(g_path), str(tmp_path / "x.h5"))
    assert [int(line.split("\t")[1]) for line in out] == list(expect)
    assert out[3].startswith(f"{tmp_path / 'x.h5'}[3]\t")


def test_pruned_and_badnet_print_classes_below_n(nets, tmp_path):
    root, b, bp, x = nets
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    for path, net in ((root / "models/variants/pruned_2.h5", bp), (root / "models/badnet.h5", b)):
        code, out, _ = run("classify", str(path), str(tmp_path / "a.png"))
        assert code == 0
        assert out == [f"{tmp_path / 'a.png'}\t{int(predict_classes(net, x[:1], 255.0)[0])}"]


def test_jpeg_and_divisor_flag(nets, tmp_path):
    root, b, _, x = nets
    Image.fromarray(x[1]).save(tmp_path / "a.jpg", quality=95)
    decoded = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB"))[None]
    code, out, _ = run("classify", "--input-divisor", "1", str(root / "models/badnet.h5"), str(tmp_path / "a.jpg"))
    assert code == 0
    assert out[0].endswith(f"\t{int(predict_classes(b, decoded, 1.0)[0])}")


@pytest.mark.parametrize("make,pattern", [
    (lambda p: Image.new("RGB", (40, 40)).save(p), r"image is 40x40 \(width x height\), the model takes 47x55"),
    (lambda p: p.write_bytes(b"not a png"), r"not a readable PNG or JPEG"),
    (lambda p: None, r"file not found"),
])
def test_bad_images(nets, tmp_path, make, pattern):
    import re

    root = nets[0]
    make(tmp_path / "bad.png")
    code, out, err = run("classify", str(root / "models/badnet.h5"), str(tmp_path / "bad.png"))
    assert code == 1 and out == [] and len(err) == 1 and re.search(pattern, err[0]), err


def test_model_without_badnet_json_needs_the_flag(nets, tmp_path):
    root, b, _, x = nets
    save_model(b, tmp_path / "m.h5")
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    code, _, err = run("classify", str(tmp_path / "m.h5"), str(tmp_path / "a.png"))
    assert code == 1 and "give --input-divisor" in err[0]
    code, _, err = run("classify", str(root / "models/badnet.h5"), str(tmp_path / "a.txt"))
    assert code == 1 and "expected a .png, .jpg/.jpeg image or a CSAW .h5 file" in err[0]
