"""Band identification from --bands, descriptions and colour interpretation."""

import pytest

from detector.bands import BandMap, common_bands, infer_bands, parse_bands
from detector.errors import BandMappingError


def test_parse_named_and_positional() -> None:
    assert parse_bands("red,green,blue,nir=3,2,1,4") == BandMap(("red", "green", "blue", "nir"), (3, 2, 1, 4))
    assert parse_bands("3, 2, 1") == BandMap(("red", "green", "blue"), (3, 2, 1))
    # names may come in any order; the map is kept in red, green, blue, nir order
    assert parse_bands("nir,blue,green,red=4,1,2,3").indexes == (3, 2, 1, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("red,green=1,2", "must include red, green and blue"),
        ("red,green,blue,tir=1,2,3,4", "unknown band name"),
        ("red,green,blue=1,2", "names 3 bands but gives 2"),
        ("a,b,c", "cannot read --bands"),
        ("1,2,9", "asks for band 9 but the image has 4"),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(BandMappingError, match=message):
        parse_bands(text, count=4)


def test_infer_from_sentinel_descriptions() -> None:
    bm = infer_bands(6, ["gray"] + ["undefined"] * 5, ["B02", "B03", "B04", "B08", "B11", "B12"])
    assert bm.names == ("red", "green", "blue", "nir", "swir1", "swir2") and bm.indexes == (3, 2, 1, 4, 5, 6)


def test_infer_from_colorinterp_skips_alpha() -> None:
    assert infer_bands(4, ["red", "green", "blue", "alpha"], [None] * 4).names == ("red", "green", "blue")
    assert infer_bands(4, ["red", "green", "blue", "undefined"], [None] * 4).indexes == (1, 2, 3, 4)


def test_infer_gf2_order_without_metadata(caplog: pytest.LogCaptureFixture) -> None:
    bm = infer_bands(4, ["gray", "undefined", "undefined", "undefined"], [None] * 4)
    assert bm.indexes == (3, 2, 1, 4)
    assert "--bands" in caplog.text


def test_one_band_is_refused() -> None:
    with pytest.raises(BandMappingError, match="has 1 band"):
        infer_bands(1, ["gray"], [None])


def test_common_bands() -> None:
    rgbn, rgb = parse_bands("1,2,3,4"), parse_bands("1,2,3")
    with pytest.raises(BandMappingError, match="--common-bands"):
        common_bands(rgbn, rgb, allow_subset=False)
    b, a = common_bands(rgbn, rgb, allow_subset=True)
    assert b.names == a.names == ("red", "green", "blue")
