"""Language codes for translation: what a job may name, and what each engine calls it.

A job names a language as an ISO 639-1 code (``es``), an ISO 639-3 or 639-2/B code (``spa``,
``fre``), an English name (``Spanish``), or with a script, region or variant (``zh-Hant``,
``pt_BR``, ``ca-valencia``); engine codes are accepted too (``es_XX``, ``spa_Latn``).
:func:`normalize` gives the canonical tag: ISO 639-1 where one exists, the script only where it
is not the language's usual one, the region kept (``pt-BR``) because some engines use it.

Each engine names languages its own way: Apertium modes (``eng-spa``, ``fr-es``), mBART-50
(``es_XX``), NLLB (``spa_Latn``), M2M100 (``__es__``), T5 (a ``translate English to German:``
prefix), MarianMT (a fixed pair in the model id, ``opus-mt-en-es``) and Tesseract (``spa``).
The functions below map a canonical tag to those names, or raise a ValidationError that says
what the engine supports. No I/O: callers pass what they found installed (Apertium modes, a
tokenizer's vocabulary).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hivescribe.domain.errors import ValidationError

__all__ = [
    "MBART50_CODES",
    "Language",
    "apertium_mode",
    "apertium_pairs",
    "check_pair",
    "english_name",
    "iso639_3",
    "m2m100_code",
    "marian_pair",
    "marian_target_token",
    "mbart50_code",
    "nllb_code",
    "normalize",
    "parse",
    "t5_prefix",
    "tesseract_code",
    "uses_spaces",
]

# ISO 639-1 (or "-" where there is none), ISO 639-3, NLLB code (or "-"), English names.
_TABLE = """
af afr afr_Latn Afrikaans|am amh amh_Ethi Amharic|an arg - Aragonese|ar ara arb_Arab Arabic
as asm asm_Beng Assamese|- ast ast_Latn Asturian|az aze azj_Latn Azerbaijani
be bel bel_Cyrl Belarusian|bg bul bul_Cyrl Bulgarian|bn ben ben_Beng Bengali,Bangla
bo bod bod_Tibt Tibetan|br bre - Breton|bs bos bos_Latn Bosnian|ca cat cat_Latn Catalan,Valencian
- ceb ceb_Latn Cebuano|cs ces ces_Latn Czech|cy cym cym_Latn Welsh|da dan dan_Latn Danish
de deu deu_Latn German|el ell ell_Grek Greek|en eng eng_Latn English|eo epo epo_Latn Esperanto
es spa spa_Latn Spanish,Castilian|et est est_Latn Estonian|eu eus eus_Latn Basque
fa fas pes_Arab Persian,Farsi|fi fin fin_Latn Finnish|fj fij fij_Latn Fijian
fo fao fao_Latn Faroese|fr fra fra_Latn French|fy fry - Western Frisian,Frisian
ga gle gle_Latn Irish|gd gla gla_Latn Scottish Gaelic,Gaelic|gl glg glg_Latn Galician
gu guj guj_Gujr Gujarati|ha hau hau_Latn Hausa|he heb heb_Hebr Hebrew|hi hin hin_Deva Hindi
hr hrv hrv_Latn Croatian|ht hat hat_Latn Haitian Creole,Haitian|hu hun hun_Latn Hungarian
hy hye hye_Armn Armenian|id ind ind_Latn Indonesian|ig ibo ibo_Latn Igbo
is isl isl_Latn Icelandic|it ita ita_Latn Italian|ja jpn jpn_Jpan Japanese
jv jav jav_Latn Javanese|ka kat kat_Geor Georgian|kk kaz kaz_Cyrl Kazakh|km khm khm_Khmr Khmer
kn kan kan_Knda Kannada|ko kor kor_Hang Korean|ku kur kmr_Latn Kurdish|ky kir kir_Cyrl Kyrgyz
la lat - Latin|lb ltz ltz_Latn Luxembourgish|lg lug lug_Latn Ganda,Luganda
ln lin lin_Latn Lingala|lo lao lao_Laoo Lao|lt lit lit_Latn Lithuanian|lv lav lvs_Latn Latvian
mg mlg plt_Latn Malagasy|mi mri mri_Latn Maori|mk mkd mkd_Cyrl Macedonian
ml mal mal_Mlym Malayalam|mn mon khk_Cyrl Mongolian|mr mar mar_Deva Marathi
ms msa zsm_Latn Malay|mt mlt mlt_Latn Maltese|my mya mya_Mymr Burmese,Myanmar
nb nob nob_Latn Norwegian Bokmal,Bokmal|ne nep npi_Deva Nepali|nl nld nld_Latn Dutch,Flemish
nn nno nno_Latn Norwegian Nynorsk,Nynorsk|no nor nob_Latn Norwegian
ny nya nya_Latn Chichewa,Nyanja|oc oci oci_Latn Occitan|om orm gaz_Latn Oromo
or ori ory_Orya Odia,Oriya|pa pan pan_Guru Punjabi,Panjabi|pl pol pol_Latn Polish
ps pus pbt_Arab Pashto|pt por por_Latn Portuguese|qu que quy_Latn Quechua
ro ron ron_Latn Romanian,Moldavian|ru rus rus_Cyrl Russian|rw kin kin_Latn Kinyarwanda
sa san san_Deva Sanskrit|sc srd srd_Latn Sardinian|sd snd snd_Arab Sindhi
si sin sin_Sinh Sinhala,Sinhalese|sk slk slk_Latn Slovak|sl slv slv_Latn Slovenian,Slovene
sm smo smo_Latn Samoan|sn sna sna_Latn Shona|so som som_Latn Somali|sq sqi als_Latn Albanian
sr srp srp_Cyrl Serbian|st sot sot_Latn Sesotho,Southern Sotho|su sun sun_Latn Sundanese
sv swe swe_Latn Swedish|sw swa swh_Latn Swahili|ta tam tam_Taml Tamil|te tel tel_Telu Telugu
tg tgk tgk_Cyrl Tajik|th tha tha_Thai Thai|ti tir tir_Ethi Tigrinya|tk tuk tuk_Latn Turkmen
tl tgl tgl_Latn Tagalog,Filipino|tn tsn tsn_Latn Tswana|tr tur tur_Latn Turkish
tt tat tat_Cyrl Tatar|ug uig uig_Arab Uyghur,Uighur|uk ukr ukr_Cyrl Ukrainian|ur urd urd_Arab Urdu
uz uzb uzn_Latn Uzbek|vi vie vie_Latn Vietnamese|wo wol wol_Latn Wolof|xh xho xho_Latn Xhosa
yi yid ydd_Hebr Yiddish|yo yor yor_Latn Yoruba|- yue yue_Hant Cantonese|zh zho zho_Hans Chinese
zu zul zul_Latn Zulu
"""
# Other codes people use: ISO 639-2/B, withdrawn ISO 639-1 codes, and 639-3 individual codes.
_ALIASES = {
    "alb": "sq", "arm": "hy", "baq": "eu", "bur": "my", "chi": "zh", "cze": "cs", "dut": "nl",
    "fil": "tl", "fre": "fr", "geo": "ka", "ger": "de", "gre": "el", "ice": "is", "mac": "mk",
    "mao": "mi", "may": "ms", "per": "fa", "rum": "ro", "slo": "sk", "tib": "bo", "wel": "cy",
    "iw": "he", "in": "id", "ji": "yi", "arb": "ar", "pes": "fa", "cmn": "zh", "zsm": "ms",
    "swh": "sw", "als": "sq", "lvs": "lv", "npi": "ne", "khk": "mn", "uzn": "uz", "azj": "az",
}  # fmt: skip

MBART50_CODES = (
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN",
    "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO",
    "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN", "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL",
    "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK", "ml_IN", "mn_MN", "mr_IN", "pl_PL", "ps_AF",
    "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA", "ur_PK", "xh_ZA",
    "gl_ES", "sl_SI",
)  # fmt: skip
T5_PAIRS = (("en", "de"), ("en", "fr"), ("en", "ro"))  # what the original T5 was trained on
_NO_SPACES = ("zh", "ja", "yue")  # written without spaces between sentences
_HANT_REGIONS = ("TW", "HK", "MO")
EXAMPLES = "en, es, fr, de, pt-BR, zh-Hant, eng, spa, English, Spanish"


@dataclass(frozen=True)
class _Entry:
    code: str  # ISO 639-1 where there is one, else ISO 639-3
    iso3: str
    nllb: str | None
    names: tuple[str, ...]


def _load_table() -> dict[str, _Entry]:
    entries = {}
    for row in _TABLE.replace("\n", "|").split("|"):
        if not row.strip():
            continue
        one, three, nllb, names = row.split(maxsplit=3)
        code = three if one == "-" else one
        entries[code] = _Entry(
            code, three, None if nllb == "-" else nllb, tuple(n.strip() for n in names.split(","))
        )
    return entries


_ENTRIES = _load_table()
_LOOKUP: dict[str, str] = {
    **{key.lower(): code for code, e in _ENTRIES.items() for key in (code, e.iso3, *e.names)},
    **_ALIASES,
}


@dataclass(frozen=True)
class Language:
    """A parsed language tag: ``code`` (ISO 639-1, else 639-3), then optional subtags."""

    code: str
    script: str | None = None  # "Hant": only where it is not the language's usual script
    region: str | None = None  # "BR", "US", "419"
    variants: tuple[str, ...] = ()  # "valencia"

    @property
    def tag(self) -> str:
        return "-".join([self.code, *filter(None, (self.script, self.region)), *self.variants])

    @property
    def entry(self) -> _Entry:
        return _ENTRIES[self.code]


def _unknown(value: str) -> ValidationError:
    return ValidationError(
        f"unknown language {value!r}: use an ISO 639-1 or 639-3 code or an English name, "
        f"e.g. {EXAMPLES}"
    )


def parse(value: str) -> Language:
    """The Language named by ``value``, or a ValidationError that gives examples."""
    text = " ".join(str(value).split())
    if text.lower() in _LOOKUP:
        return Language(_LOOKUP[text.lower()])  # a plain code or an English name
    first, *rest = re.split(r"[-_]", text) if text else [""]
    code = _LOOKUP.get(first.lower()) if re.fullmatch(r"[A-Za-z]{2,3}", first) else None
    if code is None:
        raise _unknown(value)
    script = region = None
    variants: list[str] = []
    for part in rest:
        if re.fullmatch(r"[A-Za-z]{4}", part) and not variants:
            script = part.title()
        elif re.fullmatch(r"[A-Za-z]{2}|[0-9]{3}", part) and not variants:
            region = None if part.upper() == "XX" else part.upper()  # mBART's "en_XX"
        elif re.fullmatch(r"[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}", part):
            variants.append(part.lower())
        else:
            raise _unknown(value)
    usual = _ENTRIES[code].nllb
    if script is not None and usual is not None and usual.endswith("_" + script):
        script = None
    return Language(code, script, region, tuple(variants))


def normalize(value: str) -> str:
    """The canonical tag for ``value``: ``"eng"`` and ``"English"`` give ``"en"``."""
    return parse(value).tag


def check_pair(source: str, target: str) -> tuple[str, str]:
    """Both tags normalised; a ValidationError when they name the same language."""
    a, b = parse(source), parse(target)
    if a.code == b.code and a.script == b.script:
        raise ValidationError(
            f"source and target language are the same ({a.tag}, {b.tag}): "
            "give the language to translate into as target_language"
        )
    return a.tag, b.tag


def english_name(tag: str) -> str:
    """``"Spanish"``; ``"Portuguese (pt-BR)"`` where the tag says more than the language."""
    language = parse(tag)
    name = language.entry.names[0]
    return name if language.tag == language.code else f"{name} ({language.tag})"


def iso639_3(tag: str) -> str:
    return parse(tag).entry.iso3


def uses_spaces(tag: str) -> bool:
    """Whether sentences are separated by spaces when written (not in Chinese or Japanese)."""
    return parse(tag).code not in _NO_SPACES


def _unsupported(engine: str, tag: str, supported: Iterable[str]) -> ValidationError:
    return ValidationError(
        f"{engine} does not translate {english_name(tag)} ({tag}); it supports: "
        f"{', '.join(sorted(set(supported)))}"
    )


# -- Apertium --------------------------------------------------------------------------------


def _mode_sides(mode: str) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """``"eng-cat_valencia"`` -> (("en", ""), ("ca", "valencia")); None when not a pair."""
    sides = mode.split("-")
    if len(sides) != 2:
        return None
    parsed = []
    for side in sides:
        code, _, suffix = side.partition("_")
        if code.lower() not in _LOOKUP:
            return None
        parsed.append((_LOOKUP[code.lower()], suffix.lower()))
    return parsed[0], parsed[1]


def apertium_pairs(modes: Iterable[str]) -> list[str]:
    """The language pairs that installed modes translate, as ``"en->es"``, for messages."""
    return sorted({f"{s[0][0]}->{s[1][0]}" for s in map(_mode_sides, modes) if s})


def apertium_mode(source: str, target: str, modes: Iterable[str]) -> str:
    """The installed Apertium mode (from ``apertium -l``) that translates source to target:
    one whose variant matches the target's region or variant (``en-US`` -> ``spa-eng_US``),
    else the plain one. Modes name languages by ISO 639-3 (``eng-spa``) or 639-1 (``fr-es``)."""
    a, b = parse(source), parse(target)
    wanted = "_".join(filter(None, (b.region, *b.variants))).lower()
    modes = sorted(modes)
    candidates = []
    for mode in modes:
        sides = _mode_sides(mode)
        if sides and sides[0][0] == a.code and sides[1][0] == b.code:
            rank = 0 if sides[1][1] == wanted else 1 if not sides[1][1] else 2
            candidates.append((rank, sides[0][1] != "", mode))
    if not candidates:
        installed = ", ".join(apertium_pairs(modes)) or "none"
        raise ValidationError(
            f"Apertium has no installed pair from {english_name(a.tag)} to "
            f"{english_name(b.tag)} ({a.tag}->{b.tag}); installed pairs: {installed}. Install "
            f"apertium-{a.entry.iso3}-{b.entry.iso3} (or apertium-{a.code}-{b.code}) where "
            "Debian packages it, or use a neural model (--model facebook/nllb-200-distilled-600M)"
        )
    return min(candidates)[2]


# -- neural models ---------------------------------------------------------------------------


def mbart50_code(tag: str) -> str:
    """mBART-50's code (``es_XX``); it has Simplified Chinese only."""
    language = parse(tag)
    codes = {c[:2]: c for c in MBART50_CODES}
    if language.code in codes and not (language.code == "zh" and _is_hant(language)):
        return codes[language.code]
    raise _unsupported("mBART-50", language.tag, (c[:2] for c in MBART50_CODES))


def _is_hant(language: Language) -> bool:
    return language.script == "Hant" or language.region in _HANT_REGIONS


def nllb_code(tag: str) -> str:
    """NLLB-200's code (``spa_Latn``; ``zho_Hant`` for zh-Hant, zh-TW and zh-HK)."""
    language = parse(tag)
    code = language.entry.nllb
    if code is not None and language.code == "zh" and _is_hant(language):
        return "zho_Hant"
    if code is not None and (language.script is None or code.endswith("_" + language.script)):
        return code
    raise _unsupported("NLLB", language.tag, (e.code for e in _ENTRIES.values() if e.nllb))


def m2m100_code(tag: str) -> str:
    """M2M100's language token (``__es__``)."""
    return f"__{parse(tag).code}__"


def t5_prefix(source: str, target: str) -> str:
    """The task prefix T5 was trained with; it translates English to German, French or
    Romanian only."""
    a, b = parse(source), parse(target)
    if (a.code, b.code) not in T5_PAIRS:
        raise ValidationError(
            f"T5 translates only English to German, French or Romanian (en->de, en->fr, "
            f"en->ro), not {a.tag}->{b.tag}: use another model for this pair"
        )
    return f"translate {a.entry.names[0]} to {b.entry.names[0]}: "


def marian_pair(model_id: str) -> tuple[str | None, str | None]:
    """The source and target a MarianMT model id names (``Helsinki-NLP/opus-mt-en-es`` ->
    ``("en", "es")``), each None where it is a group (``mul``, ``ROMANCE``) or not named."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    found = re.search(r"opus-mt-(?:tc-[a-z0-9]+-)?([A-Za-z_]+)-([A-Za-z_]+)$", name)
    if not found:
        return None, None
    return _group_or_code(found.group(1)), _group_or_code(found.group(2))


def _group_or_code(value: str) -> str | None:
    try:
        language = parse(value)
    except ValidationError:
        return None
    return language.code if value.islower() else None  # "ROMANCE" and the like are groups


def marian_target_token(target: str, tokens: Iterable[str]) -> str | None:
    """The ``>>spa<<`` token a multi-target MarianMT needs for ``target``; None when the model
    has no such tokens (one target only)."""
    tokens = [t for t in tokens if t.startswith(">>") and t.endswith("<<")]
    if not tokens:
        return None
    language = parse(target)
    for code in (language.tag.replace("-", "_"), language.code, language.entry.iso3):
        if f">>{code}<<" in tokens:
            return f">>{code}<<"
    raise _unsupported("this MarianMT model", language.tag, (t[2:-2] for t in tokens))


def tesseract_code(tag: str) -> str:
    """Tesseract's traineddata name for a language (``spa``; ``chi_sim``, ``chi_tra``)."""
    language = parse(tag)
    if language.code == "zh":
        return "chi_tra" if _is_hant(language) else "chi_sim"
    return language.entry.iso3
