"""Language codes: what a job may name, the canonical tag, each engine's names, and the
translation parameters that normalise them when a job is created."""

from __future__ import annotations

import pytest

from hivescribe.domain import TaskType, ValidationError, languages
from hivescribe.domain.inputs import check_params

# What `apertium -l` lists on Debian with apertium-eng-spa, apertium-eng-cat, apertium-fr-es.
MODES = [
    "cat-eng", "cat-eng_US", "eco-es-fr", "eco-fr-es", "eng-cat", "eng-cat_iec2017",
    "eng-cat_valencia", "eng-cat_valencia_iec2017", "eng-cat_valencia_uni", "eng-spa", "es-fr",
    "fr-es", "spa-eng", "spa-eng_US",
]  # fmt: skip


@pytest.mark.parametrize(
    ("given", "tag"),
    [
        ("en", "en"), ("EN", "en"), ("eng", "en"), ("English", "en"), ("english", "en"),
        ("spanish", "es"), ("spa", "es"), ("Castilian", "es"), ("fre", "fr"), ("fra", "fr"),
        ("ger", "de"), ("deu", "de"), ("  German ", "de"), ("en-US", "en-US"),
        ("en_us", "en-US"), ("pt-BR", "pt-BR"), ("pt_br", "pt-BR"), ("por", "pt"),
        ("es-419", "es-419"), ("zh", "zh"), ("zh-Hans", "zh"), ("zh-hant", "zh-Hant"),
        ("zh_TW", "zh-TW"), ("zho_Hant", "zh-Hant"), ("chi", "zh"), ("cmn", "zh"),
        ("es_XX", "es"), ("en_XX", "en"), ("spa_Latn", "es"), ("eng_Latn", "en"),
        ("sr-Latn", "sr-Latn"), ("ca-valencia", "ca-valencia"), ("ast", "ast"),
        ("Asturian", "ast"), ("iw", "he"), ("fil", "tl"), ("Norwegian Bokmal", "nb"),
        ("pes", "fa"), ("Farsi", "fa"),
    ],
)  # fmt: skip
def test_codes_names_and_regions_normalise(given: str, tag: str) -> None:
    assert languages.normalize(given) == tag
    assert languages.normalize(tag) == tag  # canonical tags are fixed points


@pytest.mark.parametrize("given", ["", "xx", "klingon", "e", "english!", "en-US-x", "zz-Latn", "1"])
def test_unknown_languages_are_refused_with_examples(given: str) -> None:
    with pytest.raises(ValidationError, match=r"unknown language .* e\.g\. en, es, fr"):
        languages.normalize(given)


def test_a_language_parses_into_its_parts() -> None:
    assert languages.parse("zh_Hant_TW") == languages.Language("zh", "Hant", "TW")
    assert languages.parse("ca-valencia").variants == ("valencia",)
    assert languages.english_name("pt-BR") == "Portuguese (pt-BR)"
    assert languages.english_name("spa") == "Spanish"
    assert languages.iso639_3("de") == "deu"
    assert not languages.uses_spaces("ja")
    assert languages.uses_spaces("fr")


@pytest.mark.parametrize(
    ("source", "target"), [("en", "eng"), ("English", "en-US"), ("pt-BR", "pt"), ("zh", "zh-Hans")]
)
def test_the_same_language_twice_is_refused(source: str, target: str) -> None:
    with pytest.raises(ValidationError, match="source and target language are the same"):
        languages.check_pair(source, target)


def test_a_pair_comes_back_normalised() -> None:
    assert languages.check_pair("English", "spa") == ("en", "es")
    assert languages.check_pair("zh", "zh-Hant") == ("zh", "zh-Hant")  # script conversion


# -- Apertium --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "mode"),
    [
        ("en", "es", "eng-spa"), ("English", "Spanish", "eng-spa"), ("es", "en", "spa-eng"),
        ("es", "en-US", "spa-eng_US"), ("es", "en-GB", "spa-eng"), ("fr", "es", "fr-es"),
        ("es", "fr", "es-fr"), ("en", "ca", "eng-cat"), ("en", "ca-valencia", "eng-cat_valencia"),
        ("ca", "en", "cat-eng"),
    ],
)  # fmt: skip
def test_apertium_modes_use_639_3_or_639_1_names(source: str, target: str, mode: str) -> None:
    assert languages.apertium_mode(source, target, MODES) == mode


def test_a_missing_apertium_pair_lists_the_installed_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        languages.apertium_mode("en", "de", MODES)
    message = caught.value.detail
    assert "no installed pair from English to German" in message
    assert "ca->en, en->ca, en->es, es->en, es->fr, fr->es" in message
    assert "apertium-eng-deu" in message
    assert languages.apertium_pairs(["eco-es-fr", "not a mode"]) == []


# -- neural models ---------------------------------------------------------------------------


def test_mbart50_has_all_52_codes_and_refuses_others() -> None:
    assert len(languages.MBART50_CODES) == len(set(languages.MBART50_CODES)) == 52
    for code in languages.MBART50_CODES:
        assert languages.mbart50_code(code) == code  # each code is a language we know
    assert languages.mbart50_code("Spanish") == "es_XX"
    assert languages.mbart50_code("pt-BR") == "pt_XX"
    assert languages.mbart50_code("zh") == "zh_CN"
    for unsupported in ("zh-Hant", "ca", "yo"):
        with pytest.raises(ValidationError, match=r"mBART-50 does not translate .* supports: af"):
            languages.mbart50_code(unsupported)


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("en", "eng_Latn"), ("es", "spa_Latn"), ("fr", "fra_Latn"), ("de", "deu_Latn"),
        ("zh", "zho_Hans"), ("zh-Hant", "zho_Hant"), ("zh-TW", "zho_Hant"), ("ar", "arb_Arab"),
        ("fa", "pes_Arab"), ("sw", "swh_Latn"), ("ms", "zsm_Latn"), ("no", "nob_Latn"),
        ("ja", "jpn_Jpan"), ("ko", "kor_Hang"), ("hi", "hin_Deva"), ("ru", "rus_Cyrl"),
        ("pt-BR", "por_Latn"), ("ast", "ast_Latn"), ("yue", "yue_Hant"),
    ],
)  # fmt: skip
def test_nllb_codes(given: str, code: str) -> None:
    assert languages.nllb_code(given) == code


def test_nllb_covers_the_common_languages_and_refuses_others() -> None:
    common = "af am ar bg bn ca cs cy da de el en es et fa fi fr ga gl gu he hi hr hu hy id ig "
    common += "is it ja ka kk km kn ko lt lv mk ml mn mr ms my ne nl no pa pl ps pt ro ru si sk "
    common += "sl so sr sv sw ta te th tl tr uk ur uz vi xh yo zh zu"
    codes = {languages.nllb_code(code) for code in common.split()}
    assert len(codes) == len(common.split()) > 40
    for unsupported in ("la", "br", "sr-Latn"):
        with pytest.raises(ValidationError, match="NLLB does not translate"):
            languages.nllb_code(unsupported)


def test_t5_knows_three_pairs_from_english() -> None:
    assert languages.t5_prefix("en", "de") == "translate English to German: "
    assert languages.t5_prefix("eng", "French") == "translate English to French: "
    assert languages.t5_prefix("en", "ro") == "translate English to Romanian: "
    for source, target in (("de", "en"), ("en", "es")):
        with pytest.raises(ValidationError, match="T5 translates only English to German"):
            languages.t5_prefix(source, target)


@pytest.mark.parametrize(
    ("model_id", "pair"),
    [
        ("Helsinki-NLP/opus-mt-en-es", ("en", "es")),
        ("Helsinki-NLP/opus-mt-en-zh", ("en", "zh")),
        ("Helsinki-NLP/opus-mt-tc-big-en-pt", ("en", "pt")),
        ("Helsinki-NLP/opus-mt-en-ROMANCE", ("en", None)),
        ("Helsinki-NLP/opus-mt-mul-en", (None, "en")),
        ("models/opus-mt-de-fr/", ("de", "fr")),
        ("facebook/nllb-200-distilled-600M", (None, None)),
    ],
)
def test_marian_pairs_come_from_the_model_id(model_id: str, pair: tuple[str, str]) -> None:
    assert languages.marian_pair(model_id) == pair


def test_multi_target_marian_models_need_a_target_token() -> None:
    tokens = [">>es<<", ">>fr<<", ">>pt_BR<<", ">>ita<<", "hello"]
    assert languages.marian_target_token("Spanish", tokens) == ">>es<<"
    assert languages.marian_target_token("pt-BR", tokens) == ">>pt_BR<<"
    assert languages.marian_target_token("it", tokens) == ">>ita<<"
    assert languages.marian_target_token("de", ["hello", "world"]) is None  # one target only
    with pytest.raises(ValidationError, match="supports: es, fr, ita, pt_BR"):
        languages.marian_target_token("de", tokens)


def test_m2m100_and_tesseract_names() -> None:
    assert languages.m2m100_code("spa") == "__es__"
    assert languages.tesseract_code("en") == "eng"
    assert languages.tesseract_code("Spanish") == "spa"
    assert languages.tesseract_code("zh") == "chi_sim"
    assert languages.tesseract_code("zh-TW") == "chi_tra"


# -- translation parameters ------------------------------------------------------------------


def test_translation_parameters_are_normalised_when_a_job_is_created() -> None:
    params = check_params(
        TaskType.TEXT_TRANSLATION, {"source_language": "English", "target_language": "spa"}
    )
    assert params == {
        "source_language": "en", "target_language": "es", "max_chunk_chars": 1000,
        "mark_unknown": True,
    }  # fmt: skip
    document = check_params(
        TaskType.DOCUMENT_TRANSLATION,
        {"source_language": "es", "target_language": "en", "ocr": "always", "num_beams": 2},
    )
    assert document["ocr_language"] == "spa"  # tesseract's name, from the source language
    assert document["ocr_engine"] == "tesseract"
    assert (document["ocr"], document["num_beams"]) == ("always", 2)
    assert (
        check_params(
            TaskType.DOCUMENT_TRANSLATION,
            {"source_language": "en", "target_language": "fr", "ocr_language": "eng+fra"},
        )["ocr_language"]
        == "eng+fra"
    )


@pytest.mark.parametrize(
    ("task", "params", "named"),
    [
        (TaskType.TEXT_TRANSLATION, {"target_language": "es"}, "source_language: Field required"),
        (TaskType.TEXT_TRANSLATION, {"source_language": "en"}, "target_language: Field required"),
        (
            TaskType.TEXT_TRANSLATION,
            {"source_language": "en", "target_language": "eng"},
            "source and target language are the same",
        ),
        (
            TaskType.TEXT_TRANSLATION,
            {"source_language": "en", "target_language": "xx"},
            "target_language: .*unknown language 'xx'",
        ),
        (
            TaskType.TEXT_TRANSLATION,
            {"source_language": "en", "target_language": "es", "max_chunk_chars": 10},
            "max_chunk_chars",
        ),
        (
            TaskType.TEXT_TRANSLATION,
            {"source_language": "en", "target_language": "es", "ocr": "auto"},
            "ocr: Extra inputs are not permitted",
        ),
        (
            TaskType.DOCUMENT_TRANSLATION,
            {"source_language": "en", "target_language": "es", "ocr": "sometimes"},
            "ocr: Input should be",
        ),
        (
            TaskType.DOCUMENT_TRANSLATION,
            {"source_language": "en", "target_language": "es", "ocr_engine": "easyocr"},
            "ocr_engine",
        ),
    ],
)
def test_bad_translation_parameters_are_refused(
    task: TaskType, params: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=f"bad parameters for {task.value}: .*{named}"):
        check_params(task, params)
