"""Hand-written sentence cases for the report labeler.

Each case is a sentence and the complete list of mentions expected in it, as
``"ABBR phrase status"``: the category abbreviation, the exact matched text
(``text[start:end]``) and the status. A case with no expectation must have no mention.
Cases cover each category positive, negated, uncertain, plural, lateral, coordinated,
stable/unchanged, double negation and non-mention phrasings. ``CASES`` is also read by
``bench/bench_labeler.py`` to compare status accuracy with ConText / NegEx.
"""

from __future__ import annotations

import pytest

from gazeloc.labeler import CATEGORIES, label_report

ABBR = {
    "AMC": "Abnormal mediastinal contour",
    "FX": "Acute fracture",
    "ATEL": "Atelectasis",
    "CONS": "Consolidation",
    "ECS": "Enlarged cardiac silhouette",
    "HIL": "Enlarged hilum",
    "GGO": "Groundglass opacity",
    "HH": "Hiatal hernia",
    "EMPH": "High lung volume / emphysema",
    "ILD": "Interstitial lung disease",
    "NOD": "Lung nodule or mass",
    "PLEU": "Pleural abnormality",
    "PTX": "Pneumothorax",
    "EDEMA": "Pulmonary edema",
    "DEV": "Support devices",
}
STATUS = {"pos": "positive", "unc": "uncertain", "neg": "negative"}

CASES: list[tuple[str, tuple[str, ...]]] = [
    # --- pleural abnormality -------------------------------------------------------------
    ("Small left pleural effusion.", ("PLEU pleural effusion pos",)),
    ("Bilateral pleural effusions.", ("PLEU pleural effusions pos",)),
    ("No pleural effusion.", ("PLEU pleural effusion neg",)),
    ("Possible small right pleural effusion.", ("PLEU pleural effusion unc",)),
    ("Moderate right effusion is unchanged.", ("PLEU effusion pos",)),
    ("The left pleural effusion has not resolved.", ("PLEU pleural effusion pos",)),
    ("The left pleural effusion has resolved.", ("PLEU pleural effusion neg",)),
    ("Small pericardial effusion.", ("ECS pericardial effusion pos",)),
    ("Blunting of the right costophrenic angle.", ("PLEU Blunting pos",)),
    ("The costophrenic angles are sharp.", ("PLEU costophrenic angles neg",)),
    ("Left apical pleural thickening.", ("PLEU pleural thickening pos",)),
    ("Calcified pleural plaques bilaterally.", ("PLEU pleural plaques pos",)),
    ("Cannot exclude a small left effusion.", ("PLEU effusion unc",)),
    (
        "Small left effusion versus pleural thickening.",
        ("PLEU effusion unc", "PLEU pleural thickening unc"),
    ),
    ("Left pleural catheter in place.", ("DEV catheter pos",)),
    ("Trace fluid in the minor fissure.", ("PLEU fluid in the minor fissure pos",)),
    ("Loculated fluid along the right lateral chest wall.", ("PLEU Loculated fluid pos",)),
    ("No effusions.", ("PLEU effusions neg",)),
    ("Effusions are not seen.", ("PLEU Effusions neg",)),
    ("Increasing bilateral effusions, left greater than right.", ("PLEU effusions pos",)),
    ("Pleural-based opacity in the right mid lung.", ("PLEU Pleural-based opacity pos",)),
    ("Apical pleural thickening, unchanged.", ("PLEU pleural thickening pos",)),
    ("Interval increase in left pleural effusion.", ("PLEU pleural effusion pos",)),
    ("There may be a small left pleural effusion.", ("PLEU pleural effusion unc",)),
    ("The right costophrenic angle is excluded from the field of view.", ()),
    ("Near complete resolution of the left effusion.", ("PLEU effusion pos",)),
    ("Effusion is not excluded.", ("PLEU Effusion unc",)),
    (
        "Small bilateral pleural effusions, right greater than left.",
        ("PLEU pleural effusions pos",),
    ),
    ("Persistent blunting of the left costophrenic angle.", ("PLEU blunting pos",)),
    ("No pleural abnormality.", ("PLEU pleural abnormality neg",)),
    # --- pneumothorax --------------------------------------------------------------------
    ("No pneumothorax.", ("PTX pneumothorax neg",)),
    ("Small right apical pneumothorax.", ("PTX pneumothorax pos",)),
    ("Tiny left pneumothorax is unchanged.", ("PTX pneumothorax pos",)),
    ("Questionable tiny left apical pneumothorax.", ("PTX pneumothorax unc",)),
    ("No evidence of pneumothorax.", ("PTX pneumothorax neg",)),
    ("Pneumothorax cannot be excluded.", ("PTX Pneumothorax unc",)),
    ("The right pneumothorax has resolved.", ("PTX pneumothorax neg",)),
    ("Right pneumothorax has not resolved.", ("PTX pneumothorax pos",)),
    ("Bilateral pneumothoraces.", ("PTX pneumothoraces pos",)),
    ("A visceral pleural line is seen at the right apex.", ("PTX visceral pleural line pos",)),
    (
        "Left chest tube with no residual pneumothorax.",
        ("DEV chest tube pos", "PTX pneumothorax neg"),
    ),
    ("Small left hydropneumothorax.", ("PTX hydropneumothorax pos", "PLEU hydropneumothorax pos")),
    (
        "No pneumothorax or pleural effusion is identified.",
        ("PTX pneumothorax neg", "PLEU pleural effusion neg"),
    ),
    ("Pneumothorax is unlikely.", ("PTX Pneumothorax unc",)),
    ("No definite pneumothorax.", ("PTX pneumothorax neg",)),
    ("No pneumothorax is seen.", ("PTX pneumothorax neg",)),
    ("Pneumothorax is no longer seen.", ("PTX Pneumothorax neg",)),
    ("Negative for pneumothorax.", ("PTX pneumothorax neg",)),
    ("Large right tension pneumothorax.", ("PTX pneumothorax pos",)),
    ("The small left apical pneumothorax is slightly smaller.", ("PTX pneumothorax pos",)),
    # --- pulmonary edema -----------------------------------------------------------------
    ("Mild pulmonary edema.", ("EDEMA pulmonary edema pos",)),
    ("No pulmonary edema.", ("EDEMA pulmonary edema neg",)),
    ("Findings may represent mild interstitial edema.", ("EDEMA interstitial edema unc",)),
    ("Pulmonary vascular congestion.", ("EDEMA Pulmonary vascular congestion unc",)),
    (
        "No vascular congestion or edema.",
        ("EDEMA vascular congestion neg", "EDEMA edema neg"),
    ),
    (
        "Cephalization of the pulmonary vasculature.",
        ("EDEMA Cephalization pos", "EDEMA pulmonary vasculature pos"),
    ),
    ("The pulmonary vasculature is normal.", ("EDEMA pulmonary vasculature neg",)),
    ("Interval resolution of pulmonary edema.", ("EDEMA pulmonary edema neg",)),
    ("Soft tissue edema of the chest wall.", ()),
    (
        "Findings are consistent with congestive heart failure.",
        ("EDEMA congestive heart failure pos",),
    ),
    ("Kerley B lines at the lung bases.", ("EDEMA Kerley B lines pos",)),
    ("Peribronchial cuffing.", ("EDEMA Peribronchial cuffing pos",)),
    ("Edema has improved but persists.", ("EDEMA Edema pos",)),
    (
        "Mild edema versus atelectasis at the bases.",
        ("EDEMA edema unc", "ATEL atelectasis unc"),
    ),
    ("Stable mild interstitial edema.", ("EDEMA interstitial edema pos",)),
    ("Pulmonary vascular markings are indistinct.", ("EDEMA Pulmonary vascular markings pos",)),
    ("Mild pulmonary edema, improved.", ("EDEMA pulmonary edema pos",)),
    ("Septal lines.", ("EDEMA Septal lines pos",)),
    (
        "Moderate hiatal hernia. No pulmonary edema.",
        ("HH hiatal hernia pos", "EDEMA pulmonary edema neg"),
    ),
    ("Worsening perihilar edema.", ("EDEMA perihilar edema pos",)),
    ("Normal pulmonary vascularity.", ("EDEMA pulmonary vascularity neg",)),
    # --- consolidation, atelectasis, groundglass opacity -----------------------------------
    ("Right lower lobe consolidation.", ("CONS consolidation pos",)),
    ("No focal consolidation.", ("CONS consolidation neg",)),
    (
        "Focal consolidation in the left lower lobe concerning for pneumonia.",
        ("CONS consolidation pos", "CONS pneumonia unc"),
    ),
    (
        "Left basilar opacity may represent atelectasis or pneumonia.",
        ("ATEL opacity pos", "CONS opacity pos", "ATEL atelectasis unc", "CONS pneumonia unc"),
    ),
    (
        "Patchy airspace opacities in both lower lobes.",
        ("CONS airspace opacities pos", "GGO airspace opacities pos"),
    ),
    ("Bibasilar atelectasis.", ("ATEL atelectasis pos",)),
    ("Linear atelectasis at the left base.", ("ATEL Linear atelectasis pos",)),
    ("Plate-like atelectasis in the right midlung.", ("ATEL Plate-like atelectasis pos",)),
    ("No atelectasis.", ("ATEL atelectasis neg",)),
    (
        "Minimal bibasilar atelectasis versus scarring.",
        ("ATEL atelectasis unc", "ATEL scarring unc"),
    ),
    ("Left lower lobe collapse.", ("ATEL lobe collapse pos",)),
    ("Volume loss in the right upper lobe.", ("ATEL Volume loss pos",)),
    ("Ground-glass opacities in the right lung.", ("GGO Ground-glass opacities pos",)),
    ("Hazy opacity at the right base.", ("GGO Hazy opacity pos",)),
    ("No ground glass opacity.", ("GGO ground glass opacity neg",)),
    (
        "Subtle hazy opacity in the left mid lung, possibly early pneumonia.",
        ("GGO hazy opacity pos", "CONS pneumonia unc"),
    ),
    (
        "Linear opacity at the left base, likely atelectasis.",
        ("ATEL Linear opacity pos", "ATEL atelectasis unc"),
    ),
    ("Retrocardiac opacity.", ("ATEL opacity pos", "CONS opacity pos")),
    ("Lungs are clear without focal opacity.", ("ATEL opacity neg", "CONS opacity neg")),
    ("No focal airspace disease.", ("CONS airspace disease neg", "GGO airspace disease neg")),
    (
        "Streaky bibasilar opacities, likely atelectasis.",
        ("ATEL opacities pos", "ATEL atelectasis unc"),
    ),
    ("Increased density in the right lower lobe.", ("ATEL density pos", "CONS density pos")),
    ("Dense breast tissue.", ()),
    ("Right middle lobe pneumonia.", ("CONS pneumonia pos",)),
    ("Pneumonia is not excluded.", ("CONS Pneumonia unc",)),
    ("No evidence of pneumonia.", ("CONS pneumonia neg",)),
    ("Aspiration cannot be excluded.", ("CONS Aspiration unc",)),
    ("Multifocal pneumonia has resolved.", ("CONS pneumonia neg",)),
    ("No new consolidation.", ("CONS consolidation unc",)),
    ("Subsegmental atelectasis in the lingula.", ("ATEL Subsegmental atelectasis pos",)),
    ("Findings suggestive of right lower lobe pneumonia.", ("CONS pneumonia unc",)),
    ("Consolidation in the left lower lobe is unchanged.", ("CONS Consolidation pos",)),
    ("Left lower lobe infiltrate.", ("CONS infiltrate pos",)),
    (
        "Opacity in the right upper lobe is concerning for pneumonia.",
        ("ATEL Opacity pos", "CONS Opacity pos", "CONS pneumonia unc"),
    ),
    (
        "There is no consolidation, effusion, or pneumothorax.",
        ("CONS consolidation neg", "PLEU effusion neg", "PTX pneumothorax neg"),
    ),
    ("Opacities are improved.", ("ATEL Opacities pos", "CONS Opacities pos")),
    ("Pneumonia has not completely resolved.", ("CONS Pneumonia pos",)),
    ("Partial resolution of right lower lobe consolidation.", ("CONS consolidation pos",)),
    ("No significant change in left lower lobe atelectasis.", ("ATEL atelectasis pos",)),
    ("Cannot rule out pneumonia.", ("CONS pneumonia unc",)),
    ("Atelectasis rather than pneumonia.", ("ATEL Atelectasis pos", "CONS pneumonia neg")),
    ("Findings are unlikely to represent pneumonia.", ("CONS pneumonia unc",)),
    ("Lungs are free of consolidation.", ("CONS consolidation neg",)),
    (
        "No consolidation. Possible small effusion.",
        ("CONS consolidation neg", "PLEU effusion unc"),
    ),
    (
        "Probable small left effusion and adjacent atelectasis.",
        ("PLEU effusion unc", "ATEL atelectasis unc"),
    ),
    (
        "Atelectasis and/or consolidation at the left base.",
        ("ATEL Atelectasis unc", "CONS consolidation unc"),
    ),
    (
        "Left lower lobe opacity, atelectasis versus consolidation.",
        ("ATEL opacity unc", "CONS opacity unc", "ATEL atelectasis unc", "CONS consolidation unc"),
    ),
    ("Left basilar atelectasis is again seen.", ("ATEL atelectasis pos",)),
    ("Right upper lobe opacity has cleared.", ("ATEL opacity neg", "CONS opacity neg")),
    ("Questionable right lower lobe infiltrate.", ("CONS infiltrate unc",)),
    (
        "Mild bibasilar atelectasis without focal consolidation.",
        ("ATEL atelectasis pos", "CONS consolidation neg"),
    ),
    (
        "Diffuse bilateral airspace disease, which may represent edema or infection.",
        (
            "CONS airspace disease pos",
            "GGO airspace disease pos",
            "EDEMA edema unc",
            "CONS infection unc",
        ),
    ),
    ("Linear scarring in the left midlung.", ("ATEL Linear scarring pos",)),
    ("No convincing evidence of pneumonia.", ("CONS pneumonia neg",)),
    ("Dense consolidation of the entire left lower lobe.", ("CONS consolidation pos",)),
    ("Bilateral lower lobe consolidations.", ("CONS consolidations pos",)),
    ("Ill-defined right perihilar opacities.", ("ATEL opacities pos", "CONS opacities pos")),
    (
        "Air bronchograms within the consolidation.",
        ("CONS Air bronchograms pos", "CONS consolidation pos"),
    ),
    ("Sternotomy scar.", ("DEV Sternotomy pos",)),
    # --- interstitial lung disease -------------------------------------------------------
    ("Diffuse interstitial lung disease.", ("ILD interstitial lung disease pos",)),
    ("Chronic interstitial changes.", ("ILD interstitial changes pos",)),
    (
        "Increased interstitial markings.",
        ("ILD interstitial markings pos", "EDEMA interstitial markings pos"),
    ),
    (
        "Bibasilar reticular opacities consistent with fibrosis.",
        ("ILD reticular opacities pos", "ILD fibrosis pos"),
    ),
    ("No interstitial lung disease.", ("ILD interstitial lung disease neg",)),
    ("Honeycombing at the lung bases.", ("ILD Honeycombing pos",)),
    ("Pulmonary fibrosis is stable.", ("ILD fibrosis pos",)),
    ("Possible sarcoidosis.", ("ILD sarcoidosis unc",)),
    ("Cystic fibrosis.", ()),
    (
        "Coarse interstitial markings bilaterally.",
        ("ILD Coarse interstitial markings pos", "EDEMA interstitial markings pos"),
    ),
    ("Fibrotic changes at both apices.", ("ILD Fibrotic pos",)),
    # --- lung nodule or mass -------------------------------------------------------------
    ("A 1 cm nodule in the right upper lobe.", ("NOD nodule pos",)),
    ("No suspicious pulmonary nodules.", ("NOD nodules neg",)),
    ("Right hilar mass.", ("NOD mass pos", "HIL hilar mass pos")),
    ("Massive cardiomegaly.", ("ECS cardiomegaly pos",)),
    ("Calcified granuloma in the left lower lobe.", ()),
    ("Calcified nodule in the right upper lobe.", ()),
    (
        "Nodular opacity in the left upper lobe, possibly a nipple shadow.",
        ("NOD Nodular opacity pos",),
    ),
    (
        "Left upper lobe mass is concerning for malignancy.",
        ("NOD mass pos", "NOD malignancy unc"),
    ),
    ("Multiple pulmonary metastases.", ("NOD metastases pos",)),
    ("Osseous metastases.", ()),
    ("No pulmonary mass.", ("NOD mass neg",)),
    ("Possible nodule projecting over the left lower lung.", ("NOD nodule unc",)),
    ("Stable 8 mm nodule.", ("NOD nodule pos",)),
    ("Mass effect on the trachea.", ()),
    ("Cavitary lesion in the right upper lobe.", ("NOD Cavitary lesion pos",)),
    ("Bilateral pulmonary nodules are unchanged.", ("NOD nodules pos",)),
    ("The previously seen nodule is no longer visualized.", ("NOD nodule neg",)),
    # --- enlarged cardiac silhouette -----------------------------------------------------
    ("Mild cardiomegaly.", ("ECS cardiomegaly pos",)),
    ("No cardiomegaly.", ("ECS cardiomegaly neg",)),
    ("The heart is enlarged.", ("ECS heart pos",)),
    ("Heart size is normal.", ("ECS Heart size neg",)),
    ("Normal heart size.", ("ECS heart size neg",)),
    ("The heart size is within normal limits.", ("ECS heart size neg",)),
    ("The cardiac silhouette is enlarged.", ("ECS cardiac silhouette pos",)),
    ("Stable cardiomegaly.", ("ECS cardiomegaly pos",)),
    ("Heart size is stable.", ("ECS Heart size unc",)),
    ("Borderline heart size.", ("ECS heart size unc",)),
    ("The heart is not enlarged.", ("ECS heart neg",)),
    ("The heart is top normal in size.", ("ECS heart neg",)),
    ("Enlarged cardiac silhouette.", ("ECS Enlarged cardiac silhouette pos",)),
    ("Pacemaker leads terminate in the right ventricle.", ("DEV Pacemaker leads pos",)),
    ("Tip of the catheter projects over the heart.", ("DEV catheter pos",)),
    ("The heart is mildly enlarged, unchanged.", ("ECS heart pos",)),
    (
        "Cardiomegaly is possibly accentuated by AP technique.",
        ("ECS Cardiomegaly unc",),
    ),
    ("Moderate enlargement of the cardiac silhouette.", ("ECS cardiac silhouette pos",)),
    ("The heart size cannot be assessed.", ("ECS heart size unc",)),
    ("Small pericardial effusion cannot be excluded.", ("ECS pericardial effusion unc",)),
    ("Left heart border is obscured.", ()),
    ("Heart size is not normal.", ("ECS Heart size pos",)),
    ("Heart size is upper limits of normal.", ("ECS Heart size neg",)),
    ("Cardiac enlargement is unchanged.", ("ECS Cardiac enlargement pos",)),
    ("The heart size is accentuated by the low lung volumes.", ("ECS heart size unc",)),
    ("Left ventricular enlargement.", ("ECS Left ventricular enlargement pos",)),
    # --- abnormal mediastinal contour ----------------------------------------------------
    ("The mediastinum is widened.", ("AMC mediastinum pos",)),
    ("Mediastinal contours are normal.", ("AMC Mediastinal contours neg",)),
    ("Widened mediastinum.", ("AMC Widened mediastinum pos",)),
    (
        "Normal cardiomediastinal silhouette.",
        ("ECS cardiomediastinal silhouette neg", "AMC cardiomediastinal silhouette neg"),
    ),
    (
        "The cardiomediastinal silhouette is stable.",
        ("ECS cardiomediastinal silhouette unc", "AMC cardiomediastinal silhouette unc"),
    ),
    (
        "Unchanged cardiomediastinal contours.",
        ("ECS cardiomediastinal contours unc", "AMC cardiomediastinal contours unc"),
    ),
    ("Tortuous aorta.", ("AMC Tortuous aorta pos",)),
    ("The aorta is tortuous.", ("AMC aorta pos",)),
    ("Aortic knob calcifications.", ()),
    ("No mediastinal widening.", ("AMC mediastinal widening neg",)),
    ("Endotracheal tube terminates in the mid trachea.", ("DEV Endotracheal tube pos",)),
    ("Right paratracheal stripe widening.", ("AMC paratracheal stripe widening pos",)),
    (
        "Mild widening of the superior mediastinum, likely vascular.",
        ("AMC widening of the superior mediastinum pos",),
    ),
    (
        "The heart and mediastinum are within normal limits.",
        ("ECS heart neg", "AMC mediastinum neg"),
    ),
    (
        "Heart size and mediastinal contours are stable.",
        ("ECS Heart size unc", "AMC mediastinal contours unc"),
    ),
    (
        "The heart is normal in size and the mediastinum is widened.",
        ("ECS heart neg", "AMC mediastinum pos"),
    ),
    (
        "Stable mediastinal contours. No acute fracture.",
        ("AMC mediastinal contours unc", "FX fracture neg"),
    ),
    ("Mediastinal contours are unremarkable.", ("AMC Mediastinal contours neg",)),
    ("Possible mediastinal mass.", ("AMC mediastinal mass unc", "NOD mass unc")),
    # --- enlarged hilum ------------------------------------------------------------------
    ("Bilateral hilar adenopathy.", ("HIL hilar adenopathy pos",)),
    ("The hila are normal.", ("HIL hila neg",)),
    ("Prominent hila.", ("HIL Prominent hila pos",)),
    ("No hilar enlargement.", ("HIL hilar enlargement neg",)),
    (
        "Hilar and mediastinal contours are unremarkable.",
        ("HIL Hilar and mediastinal contours neg", "AMC mediastinal contours neg"),
    ),
    ("Possible right hilar lymphadenopathy.", ("HIL hilar lymphadenopathy unc",)),
    ("Enlarged pulmonary arteries.", ("HIL Enlarged pulmonary arteries pos",)),
    ("Opacity extending from the right hilum.", ("ATEL Opacity pos", "CONS Opacity pos")),
    ("Stable right hilar fullness.", ("HIL hilar fullness pos",)),
    ("The right hilum is enlarged.", ("HIL hilum pos",)),
    # --- hiatal hernia -------------------------------------------------------------------
    ("Large hiatal hernia.", ("HH hiatal hernia pos",)),
    ("No hiatal hernia.", ("HH hiatal hernia neg",)),
    ("Small hiatal hernia is again noted.", ("HH hiatal hernia pos",)),
    (
        "Retrocardiac density likely representing a hiatal hernia.",
        ("ATEL density pos", "CONS density pos", "HH hiatal hernia unc"),
    ),
    ("Status post hernia repair.", ()),
    ("Possible small hiatal hernia.", ("HH hiatal hernia unc",)),
    # --- high lung volume / emphysema ----------------------------------------------------
    ("Emphysema.", ("EMPH Emphysema pos",)),
    ("Hyperinflated lungs.", ("EMPH Hyperinflated pos",)),
    (
        "The lungs are hyperinflated, consistent with COPD.",
        ("EMPH hyperinflated pos", "EMPH COPD pos"),
    ),
    ("Subcutaneous emphysema in the right chest wall.", ()),
    ("Lung volumes are low.", ()),
    ("Normal lung volumes.", ("EMPH lung volumes neg",)),
    ("Flattening of the diaphragms.", ("EMPH Flattening of the diaphragms pos",)),
    ("No emphysema.", ("EMPH emphysema neg",)),
    ("Apical bullae.", ("EMPH bullae pos",)),
    ("High lung volumes.", ("EMPH High lung volumes pos",)),
    ("Possible emphysema.", ("EMPH emphysema unc",)),
    ("Lung volumes are increased.", ("EMPH Lung volumes pos",)),
    # --- acute fracture ------------------------------------------------------------------
    ("Acute fracture of the right seventh rib.", ("FX fracture pos",)),
    ("No acute fracture.", ("FX fracture neg",)),
    ("Old healed left rib fractures.", ()),
    ("Healed fractures of the right fifth and sixth ribs.", ()),
    ("Fractured sternal wire.", ("DEV sternal wire pos",)),
    ("Possible nondisplaced fracture of the left clavicle.", ("FX fracture unc",)),
    ("Displaced right clavicular fracture.", ("FX fracture pos",)),
    ("No displaced rib fractures.", ("FX fractures neg",)),
    ("Chronic compression fracture of T12.", ()),
    ("Rib fracture cannot be excluded.", ("FX fracture unc",)),
    ("Right rib fractures are again noted.", ("FX fractures pos",)),
    ("Multiple left rib fractures, some of which are healing.", ("FX fractures pos",)),
    # --- support devices -----------------------------------------------------------------
    ("Endotracheal tube in good position.", ("DEV Endotracheal tube pos",)),
    ("The endotracheal tube has been removed.", ("DEV endotracheal tube neg",)),
    ("Interval removal of the right internal jugular central line.", ("DEV central line neg",)),
    ("Right PICC line tip in the SVC.", ("DEV PICC line pos",)),
    (
        "Left chest wall pacemaker with leads in the right atrium and ventricle.",
        ("DEV pacemaker pos", "DEV leads pos"),
    ),
    ("Median sternotomy wires.", ("DEV Median sternotomy wires pos",)),
    ("No support devices.", ("DEV support devices neg",)),
    ("Nasogastric tube courses below the diaphragm.", ("DEV Nasogastric tube pos",)),
    ("Enteric tube tip is not visualized.", ("DEV Enteric tube pos",)),
    ("Lines and tubes are unchanged.", ("DEV Lines pos", "DEV tubes pos")),
    (
        "Right chest tube has been removed. No pneumothorax.",
        ("DEV chest tube neg", "PTX pneumothorax neg"),
    ),
    ("Kyphoplasty changes in the lumbar spine.", ("DEV Kyphoplasty pos",)),
    ("Surgical clips in the right upper quadrant.", ("DEV clips pos",)),
    ("The trachea is midline.", ()),
    ("ECG leads overlie the chest.", ("DEV ECG leads pos",)),
    (
        "Nasogastric tube tip in the stomach. No pneumothorax.",
        ("DEV Nasogastric tube pos", "PTX pneumothorax neg"),
    ),
    # --- mixed sentences, scope ----------------------------------------------------------
    (
        "There is a small left effusion but no pneumothorax.",
        ("PLEU effusion pos", "PTX pneumothorax neg"),
    ),
    (
        "No pneumothorax; small bilateral effusions.",
        ("PTX pneumothorax neg", "PLEU effusions pos"),
    ),
    (
        "No pneumothorax, small left pleural effusion.",
        ("PTX pneumothorax neg", "PLEU pleural effusion pos"),
    ),
    (
        "No pneumothorax and stable small left effusion.",
        ("PTX pneumothorax neg", "PLEU effusion pos"),
    ),
    (
        "Without evidence of edema, effusion, or pneumothorax.",
        ("EDEMA edema neg", "PLEU effusion neg", "PTX pneumothorax neg"),
    ),
    ("Clear lungs with small right effusion.", ("PLEU effusion pos",)),
    (
        "Cardiomegaly with pulmonary vascular congestion and small bilateral effusions.",
        (
            "ECS Cardiomegaly pos",
            "EDEMA pulmonary vascular congestion unc",
            "PLEU effusions pos",
        ),
    ),
    (
        "No focal consolidation, pleural effusion or pneumothorax.",
        ("CONS consolidation neg", "PLEU pleural effusion neg", "PTX pneumothorax neg"),
    ),
    (
        "No evidence of focal consolidation, pulmonary edema, pleural effusion or pneumothorax.",
        (
            "CONS consolidation neg",
            "EDEMA pulmonary edema neg",
            "PLEU pleural effusion neg",
            "PTX pneumothorax neg",
        ),
    ),
    (
        "Small left effusion with adjacent atelectasis, no pneumothorax.",
        ("PLEU effusion pos", "ATEL atelectasis pos", "PTX pneumothorax neg"),
    ),
    (
        "The lungs are clear and there is no pleural effusion.",
        ("PLEU pleural effusion neg",),
    ),
    (
        "Mild cardiomegaly without pulmonary edema.",
        ("ECS cardiomegaly pos", "EDEMA pulmonary edema neg"),
    ),
    ("The lungs are clear.", ()),
    ("The osseous structures are intact.", ()),
    ("No acute cardiopulmonary process.", ()),
    ("Degenerative changes of the thoracic spine.", ()),
    ("There is no free air under the diaphragm.", ()),
    ("Elevated right hemidiaphragm.", ()),
    ("The lungs are otherwise clear.", ()),
    ("Nothing to suggest an acute process.", ()),
    (
        "Heart size is normal. No focal consolidation.",
        ("ECS Heart size neg", "CONS consolidation neg"),
    ),
    (
        "Stable cardiomegaly and pulmonary edema.",
        ("ECS cardiomegaly pos", "EDEMA pulmonary edema pos"),
    ),
    (
        "Neither pleural effusion nor pneumothorax.",
        ("PLEU pleural effusion neg", "PTX pneumothorax neg"),
    ),
    (
        "Right basilar opacity which could be atelectasis or aspiration.",
        ("ATEL opacity pos", "CONS opacity pos", "ATEL atelectasis unc", "CONS aspiration unc"),
    ),
    (
        "Low lung volumes with bibasilar atelectasis.",
        ("ATEL atelectasis pos",),
    ),
    (
        "No new focal consolidation or effusion.",
        ("CONS consolidation unc", "PLEU effusion unc"),
    ),
    (
        "No definite consolidation to suggest pneumonia.",
        ("CONS consolidation neg", "CONS pneumonia neg"),
    ),
    (
        "Pneumonia in the appropriate clinical setting.",
        ("CONS Pneumonia pos",),
    ),
]


def expected_of(spec: str) -> tuple[str, str, str]:
    abbr, rest = spec.split(" ", 1)
    phrase, status = rest.rsplit(" ", 1)
    return ABBR[abbr], phrase, STATUS[status]


def test_case_table_is_large_and_covers_every_category():
    assert len(CASES) >= 200
    covered = {expected_of(s)[0] for _, specs in CASES for s in specs}
    assert covered == set(CATEGORIES)
    for category in CATEGORIES:
        statuses = {
            expected_of(s)[2] for _, specs in CASES for s in specs if expected_of(s)[0] == category
        }
        assert statuses >= {"positive", "negative"}, category


@pytest.mark.parametrize(("text", "specs"), CASES, ids=[c[0][:60] for c in CASES])
def test_sentence_case(text, specs):
    mentions = label_report(text)
    for m in mentions:
        assert 0 <= m.start < m.end <= len(text)
        assert text[m.start : m.end].strip() == text[m.start : m.end]
    got = sorted((m.category, text[m.start : m.end], m.status) for m in mentions)
    want = sorted(expected_of(s) for s in specs)
    assert got == want
