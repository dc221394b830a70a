"""Kinetic scheme of BA solution polymerization in toluene initiated by AIBN, with literature sources.

Scheme (two radical types; SPR = secondary chain-end radical P, MCR = mid-chain radical Q):

    I -> 2 R*            kd, efficiency f          R* + M -> P(1) (instantaneous)
    P(n) + M -> P(n+1)   kp
    P(n) -> Q(n)         kbb  (1,5-backbiting)
    Q(n) + M -> P(n+1)   kpt
    P + P -> dead        ktss       P + Q -> dead   ktst       Q + Q -> dead   ktt
    P(n) + M -> D(n) + P(1)   ktrM
    P(n) + S -> D(n) + P(1)   ktrS = CS * kp  (solvent radical re-initiates at once, consuming one M)
    Q(n) -> D(n) + P(1)       kbeta (beta-scission of the MCR: a macromonomer and a short radical; an
                              option, off by default, deterministic engine only)

Termination convention (IUPAC): d[P]/dt = -2 ktss [P]^2, d[Q]/dt = -2 ktt [Q]^2 and the cross term
removes 2 ktst [P][Q] of each type per unit time (per-SPR loss frequency 2 ktst [Q]).  Every engine of
the package uses this one convention.  A termination event ends by disproportionation with the
fractions below, otherwise by combination.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

R_GAS = 8.314462618  # J/mol/K
N_AVOGADRO = 6.02214076e23  # 1/mol

# Physical data (kinetics.md; CRC Handbook values at 25 °C)
M_BA = 128.17  # g/mol, n-butyl acrylate
RHO_BA = 894.0  # g/L
M_TOLUENE = 92.14  # g/mol
RHO_TOLUENE = 867.0  # g/L
M_AIBN = 164.21  # g/mol

# Temperatures for which the Arrhenius parameters below were measured or are routinely extrapolated
# (PLP-SEC / SP-PLP-EPR studies of BA span roughly -10 to 90 °C; AIBN half-lives 40-100 °C).
T_VALID_C = (50.0, 90.0)


@dataclass(frozen=True)
class Arrhenius:
    """k = A * exp(-Ea / (R T)), with the literature source of the numbers."""

    A: float
    Ea_kJ: float
    source: str = ""

    def __call__(self, temp_c: float) -> float:
        return self.A * math.exp(-self.Ea_kJ * 1e3 / (R_GAS * (temp_c + 273.15)))


@dataclass(frozen=True)
class KineticParameters:
    """All coefficients of the scheme.  Change one with `dataclasses.replace` for a sensitivity study."""

    kd: Arrhenius = Arrhenius(
        4.31e15, 131.7,
        "AIBN in toluene; mcPolymer tutorial model file (Drache et al.); 10-h half-life 65 °C. Verified.")
    f: float = 0.64  # initiator efficiency, same mcPolymer tutorial model file. Verified.
    kp: Arrhenius = Arrhenius(
        2.21e7, 17.9,
        "IUPAC benchmark for BA by PLP-SEC: Asua et al., Macromol. Chem. Phys. 2004, 205, 2151. Verified.")
    kbb: Arrhenius = Arrhenius(
        7.4e7, 32.7,
        "1,5-backbiting of BA SPRs: Nikitin, Hutchinson, Buback, Hesse, Macromolecules 2007, 40, 8631.")
    kpt: Arrhenius = Arrhenius(
        1.2e6, 28.3,
        "Propagation of BA MCRs: Nikitin, Hutchinson, Buback, Hesse, Macromolecules 2007, 40, 8631.")
    ktss: Arrhenius = Arrhenius(
        4.4e8, 8.4,
        "SPR-SPR termination: composite model of Barth, Buback, Hesse, Sergeeva, Macromolecules 2010, "
        "43, 4023 (kt(1,1) = 1.3e10 exp(-8.4 kJ/mol/RT), alpha_s = 0.85, alpha_l = 0.16, ic = 30), "
        "averaged over the radical chain lengths of this design and used chain-length independent.")
    ktt_over_ktss: float = 0.1  # MCR-MCR termination about ten times slower (usual acrylate assumption)
    # ktst = ktst_factor * sqrt(ktss * ktt): geometric-mean cross termination (usual assumption); the
    # factor is 1 and exists for the sensitivity study.
    ktst_factor: float = 1.0
    disprop_ss: float = 0.1  # fraction of SPR-SPR events ending by disproportionation (consensus)
    disprop_mcr: float = 0.9  # fraction for any pair with an MCR (consensus)
    ktrM: Arrhenius = Arrhenius(
        2.9e5, 32.6,
        "Transfer to BA monomer: Hutchinson-group BA parameter set (Wang & Hutchinson, Macromol. "
        "React. Eng. 2008; Peck & Hutchinson, Ind. Eng. Chem. Res. 2004).")
    CS: float = 2.7e-4  # ktrS / kp for acrylates in toluene; order of magnitude (kinetics.md).
    kbeta: Arrhenius = Arrhenius(0.0, 0.0, "beta-scission of MCRs: off (negligible below ~100 °C in the "
                                           "usual BA models; `sensitivity.beta_scission_scan` checks it)")
    sources: dict = field(default_factory=lambda: {
        "f": "mcPolymer tutorial model file (Drache).",
        "ktt_over_ktss": "Usual assumption for acrylate MCRs (e.g. Nikitin et al. 2007 models).",
        "ktst": "Geometric mean sqrt(ktss*ktt).",
        "disprop": "Qualitative literature consensus: SPR-SPR mostly combination, MCR pairs mostly "
                   "disproportionation.",
        "CS": "Order of magnitude of chain-transfer constants of acrylates to toluene.",
        "ktst_factor": "1: the geometric mean itself.",
    }, compare=False, hash=False, repr=False)

    def at(self, temp_c: float) -> RateConstants:
        """Rate constants at one temperature (L, mol, s)."""
        kp = self.kp(temp_c)
        ktss = self.ktss(temp_c)
        ktt = self.ktt_over_ktss * ktss
        return RateConstants(
            kd=self.kd(temp_c), f=self.f, kp=kp, kbb=self.kbb(temp_c), kpt=self.kpt(temp_c),
            ktss=ktss, ktst=self.ktst_factor * math.sqrt(ktss * ktt), ktt=ktt,
            disprop_ss=self.disprop_ss, disprop_st=self.disprop_mcr, disprop_tt=self.disprop_mcr,
            ktrM=self.ktrM(temp_c), ktrS=self.CS * kp, kbeta=self.kbeta(temp_c),
        )

    def ideal(self) -> KineticParameters:
        """Textbook kinetics: no backbiting, no transfer (the closed-form conversion applies)."""
        return replace(self, kbb=Arrhenius(0.0, 0.0, "switched off"),
                       ktrM=Arrhenius(0.0, 0.0, "switched off"), CS=0.0)


@dataclass(frozen=True)
class RateConstants:
    """Coefficients at one temperature (L/mol/s or 1/s)."""

    kd: float
    f: float
    kp: float
    kbb: float
    kpt: float
    ktss: float
    ktst: float
    ktt: float
    disprop_ss: float
    disprop_st: float
    disprop_tt: float
    ktrM: float
    ktrS: float
    kbeta: float = 0.0


DEFAULT_PARAMETERS = KineticParameters()
# The only number for beta-scission of BA MCRs in the stored sources: the "high" rate coefficient that
# Ballard, Veloso and Asua (Polymers 2018, 10, 765, SI Fig. S5) needed at 140 °C.  At 60-80 °C the true
# one is far smaller (its activation energy is well above propagation's; Reyes et al. 2016), so this is an
# extreme that the sensitivity study scans down from.
BETA_SCISSION_140C = 450.0  # 1/s

# What a literature check of kinetics.md's values found (stored sources searched in November 2026).
# status: "verified" (value found in the cited or an equivalent source), "not checkable" (the source
# text was not available; value kept from kinetics.md), "assumption" (a modelling convention).
VERIFICATION = {
    "kd": ("verified", "mcPolymer AIBN/toluene set; the AkzoNobel AIBN data (A = 2.89e15, Ea = 130.23 "
                       "kJ/mol) agree within 12 % over 60-80 °C"),
    "f": ("verified", "0.64 in the mcPolymer set (measured for styrene; for BA in toluene an assumption)"),
    "kp": ("verified", "Asua et al. 2004 IUPAC benchmark; the IUPAC 2022 revision (A = 10^7.22, "
                       "Ea = 17.3 kJ/mol, valid -65 to 70 °C) is 7-9 % lower at 60-80 °C: not adopted, "
                       "kept for comparability with the study's simulator"),
    "kbb": ("not checkable", "Nikitin et al. 2007 not in the stored sources"),
    "kpt": ("not checkable", "Nikitin et al. 2007 not in the stored sources"),
    "ktss": ("partly verified", "alpha_s = 0.85 confirmed (Barth et al. 2010); kt(1,1), alpha_l = 0.16 and "
                                "ic = 30 not checkable (alpha_l and ic coincide with styrene's values)"),
    "ktt, ktst": ("assumption", "ktt = 0.1 ktss, geometric-mean cross termination"),
    "disproportionation": ("assumption", "0.1 for SPR pairs, 0.9 with an MCR (literature consensus)"),
    "ktrM": ("not checkable", "Hutchinson-group parameter set not in the stored sources"),
    "CS": ("not checkable", "order of magnitude for acrylates in toluene; no acrylate-toluene value in the "
                            "stored sources (styrene's is 1.05e-5 at 60 °C, Carraher's Polymer Chemistry, "
                            "Table 6.4: acrylate radicals are far more reactive); its effect is bounded by "
                            "the sensitivity study (x0.5, x2)"),
    "kbeta": ("option", "off; scanned up to 450 s-1 (Ballard et al. 2018 at 140 °C) in the hot, dilute, "
                        "high-conversion corner: no Arrhenius parameters for 60-80 °C in the stored sources"),
}


@dataclass(frozen=True)
class Recipe:
    """A batch recipe: initial BA and AIBN concentrations (mol/L) and temperature (°C)."""

    cBA_0: float
    cAIBN_0: float
    temp: float

    def __post_init__(self) -> None:
        validate_recipe(self.cBA_0, self.cAIBN_0, self.temp)

    @property
    def solvent(self) -> float:
        """Toluene concentration (mol/L), assuming additive volumes of BA and toluene."""
        return (1.0 - self.cBA_0 * M_BA / RHO_BA) * RHO_TOLUENE / M_TOLUENE


class RecipeError(ValueError):
    """A recipe that the simulator cannot run, with the reason in words."""


BULK_BA = RHO_BA / M_BA  # mol/L of pure BA (6.98)
# Below these the engines are outside what they were built and checked for (50x below the design's
# lowest levels): the kMC control volume grows without bound and chains stop making sense.
MIN_CBA0 = 0.01  # mol/L
MIN_CAIBN0 = 5e-5  # mol/L


def validate_recipe(cBA_0: float, cAIBN_0: float, temp: float) -> None:
    """Raise RecipeError naming the problem for impossible or out-of-validity recipes."""
    for name, value in (("cBA_0", cBA_0), ("cAIBN_0", cAIBN_0), ("temp", temp)):
        if value is None or not math.isfinite(float(value)):
            raise RecipeError(f"{name} must be a finite number, got {value!r}")
    if cBA_0 <= 0:
        raise RecipeError(f"cBA_0 must be positive (mol/L), got {cBA_0}")
    if cBA_0 < MIN_CBA0:
        raise RecipeError(f"cBA_0 = {cBA_0:g} mol/L is too small to simulate (the limit is "
                          f"{MIN_CBA0:g} mol/L)")
    if cBA_0 > BULK_BA:
        raise RecipeError(f"cBA_0 = {cBA_0} mol/L exceeds bulk BA ({BULK_BA:.2f} mol/L): "
                          "is it given in another unit?")
    if cAIBN_0 <= 0:
        raise RecipeError(f"cAIBN_0 must be positive (mol/L), got {cAIBN_0}")
    if cAIBN_0 < MIN_CAIBN0:
        raise RecipeError(f"cAIBN_0 = {cAIBN_0:g} mol/L is too small to simulate (the limit is "
                          f"{MIN_CAIBN0:g} mol/L)")
    if cAIBN_0 > 0.2:
        raise RecipeError(f"cAIBN_0 = {cAIBN_0} mol/L is implausibly high: it looks like mmol/L; "
                          f"give it in mol/L (e.g. {cAIBN_0 / 1000:g})")
    lo, hi = T_VALID_C
    if not lo <= temp <= hi:
        raise RecipeError(f"temp = {temp} °C is outside the range where the kinetic parameters are "
                          f"valid ({lo:g}-{hi:g} °C); is it given in K?")


def parameter_table(params: KineticParameters = DEFAULT_PARAMETERS, temp_c: float = 70.0) -> list[dict]:
    """Every coefficient: Arrhenius A and Ea, its value at `temp_c`, source and verification status.

    Numbers are given as text with 3 significant digits (a table for people, not for computing).
    """
    k = params.at(temp_c)
    at = f"value at {temp_c:g} °C"
    rows = []
    for name in ("kd", "kp", "kbb", "kpt", "ktss", "ktrM"):
        arr = getattr(params, name)
        rows.append({"coefficient": name, "A": f"{arr.A:.3g}", "Ea (kJ/mol)": f"{arr.Ea_kJ:g}",
                     at: f"{getattr(k, name):.3g}", "source": arr.source, "check": VERIFICATION[name][0]})
    extra = [
        ("f", f"{k.f:g}", params.sources["f"], "f"),
        ("ktt", f"{k.ktt:.3g}", params.sources["ktt_over_ktss"], "ktt, ktst"),
        ("ktst", f"{k.ktst:.3g}", params.sources["ktst"], "ktt, ktst"),
        ("ktrS = CS kp", f"{k.ktrS:.3g}", params.sources["CS"], "CS"),
        ("disproportionation SS / with MCR", f"{k.disprop_ss:g} / {k.disprop_st:g}",
         params.sources["disprop"], "disproportionation"),
        ("kbeta (beta-scission, option)", f"{k.kbeta:.3g}", params.kbeta.source, "kbeta"),
    ]
    for name, value, source, key in extra:
        rows.append({"coefficient": name, "A": "", "Ea (kJ/mol)": "", at: value, "source": source,
                     "check": VERIFICATION[key][0]})
    return rows
