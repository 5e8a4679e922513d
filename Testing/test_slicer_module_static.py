"""What can be checked of the Slicer module and extension without Slicer.

Every file compiles; every widget the module uses exists in the .ui with the right class;
parameter-node fields are bound to widgets; the module does no RAS/LPS math of its own;
the CMake files list every library .py and resource (and install them where the module
and the pipeline look for them); the .s4ext carries every field of the Extensions Index.
"""

from __future__ import annotations

import ast
import os
import py_compile
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "SpineLabeler" / "SpineLabeler.py"
UI = ROOT / "Resources" / "UI" / "SpineLabeler.ui"
ICON = ROOT / "Resources" / "Icons" / "SpineLabeler.png"
MODULE_CMAKE = ROOT / "SpineLabeler" / "CMakeLists.txt"
TOP_CMAKE = ROOT / "CMakeLists.txt"
S4EXT = ROOT / "SpineLabeler.s4ext"

# Widget class expected from the end of a widget's name (Slicer's naming habit).
SUFFIX_CLASS = {
    "Button": "QPushButton",
    "CheckBox": "QCheckBox",
    "ComboBox": "QComboBox",
    "Selector": "qMRMLNodeComboBox",
    "TableView": "qMRMLTableView",
    "Label": "QLabel",
    "ProgressBar": "QProgressBar",
}


def library_scripts() -> list[str]:
    """Every .py of the library as CMake should list it (relative to the repository root):
    the files git tracks (so a colleague's uncommitted file does not fail this test), or
    every file on disk outside a git checkout."""
    tracked = subprocess.run(
        ["git", "ls-files", "--", "SpineLabelerLib/*.py"], cwd=ROOT, capture_output=True, text=True
    )
    if tracked.returncode == 0 and tracked.stdout.strip():
        return sorted(line for line in tracked.stdout.splitlines() if (ROOT / line).is_file())
    files = (ROOT / "SpineLabelerLib").rglob("*.py")
    return sorted(p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts)


def module_tree() -> ast.Module:
    return ast.parse(MODULE.read_text(), filename=str(MODULE))


def ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def cmake_block(text: str, variable: str) -> list[str]:
    """The raw lines of ``set(<variable> ... )``."""
    match = re.search(rf"set\({variable}\n(.*?)\n\s*\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    return match.group(1).splitlines()


def test_every_python_file_compiles(tmp_path):
    files = [MODULE] + [ROOT / f for f in library_scripts()]
    files += sorted((ROOT / "Testing").glob("*.py"))
    files += sorted((ROOT / "SpineLabeler" / "Testing").glob("*.py"))  # the in-Slicer runner
    for n, path in enumerate(files):
        py_compile.compile(str(path), cfile=str(tmp_path / f"{n}.pyc"), doraise=True)


def test_module_defines_the_four_slicer_classes_and_the_parameter_node():
    classes = {node.name: node for node in module_tree().body if isinstance(node, ast.ClassDef)}
    expected_bases = {
        "SpineLabeler": "ScriptedLoadableModule",
        "SpineLabelerWidget": "ScriptedLoadableModuleWidget",
        "SpineLabelerLogic": "ScriptedLoadableModuleLogic",
        "SpineLabelerTest": "ScriptedLoadableModuleTest",
    }
    for name, base in expected_bases.items():
        assert name in classes, f"{name} missing"
        assert base in [ast.unparse(b) for b in classes[name].bases], (
            f"{name} must derive from {base}"
        )
    assert "VTKObservationMixin" in [ast.unparse(b) for b in classes["SpineLabelerWidget"].bases]
    parameters = classes["SpineLabelerParameterNode"]
    assert "parameterNodeWrapper" in [ast.unparse(d) for d in parameters.decorator_list]
    test_methods = [
        f.name for f in classes["SpineLabelerTest"].body if isinstance(f, ast.FunctionDef)
    ]
    assert {"setUp", "runTest"} <= set(test_methods)
    assert len([m for m in test_methods if m.startswith("test_")]) >= 2
    text = MODULE.read_text()
    for required in (
        'loadUI(self.resourcePath("UI/SpineLabeler.ui"))',
        "childWidgetVariables(uiWidget)",
        "uiWidget.setMRMLScene(slicer.mrmlScene)",
        "slicer.mrmlScene.StartCloseEvent",
        "tryWithErrorDisplay",
        "slicer.mrmlScene.Clear()",
        "not for clinical diagnosis",
    ):
        assert required in text, required


def _method(class_name: str, method_name: str) -> ast.FunctionDef:
    cls = next(
        n for n in module_tree().body if isinstance(n, ast.ClassDef) and n.name == class_name
    )
    return next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == method_name)


def test_run_test_runs_every_test_method_of_the_module():
    cls = next(
        n
        for n in module_tree().body
        if isinstance(n, ast.ClassDef) and n.name == "SpineLabelerTest"
    )
    tests = {
        f.name for f in cls.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")
    }
    called = {
        n.func.attr
        for n in ast.walk(_method("SpineLabelerTest", "runTest"))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }
    assert tests <= called, f"runTest does not run {sorted(tests - called)}"
    assert "test_export_dicom_seg_into_the_database" in tests


def test_dicom_export_goes_through_slicers_own_segmentation_route():
    """The SEG that lands in Slicer's DICOM database is made by Slicer's exporter
    (DICOMSegmentationPlugin), not by the library's highdicom writer."""
    source = ast.unparse(_method("SpineLabelerLogic", "exportDicomSeg"))
    for required in (
        "import DICOMSegmentationPlugin",
        "DICOMSegmentationPlugin.DICOMSegmentationPluginClass()",
        ".examineForExport(segmentationItem)",
        ".export(exportables)",
        "shNode.SetItemParent(segmentationItem, studyItem)",
        "GetDICOMReferencedInstanceUIDsAttributeName()",
    ):
        assert required in source, required
    assert "write_dicom_seg" not in MODULE.read_text()


def test_every_widget_the_module_uses_exists_in_the_ui_with_the_right_class():
    widgets = ui_widgets()
    used = sorted(set(re.findall(r"self\.ui\.([A-Za-z_]\w*)", MODULE.read_text())))
    assert len(used) > 15
    for name in used:
        assert name in widgets, f"self.ui.{name} is not a widget in {UI.name}"
        suffix = next((s for s in SUFFIX_CLASS if name.lower().endswith(s.lower())), None)
        assert suffix, f"self.ui.{name}: name does not say its widget class"
        assert widgets[name].get("class") == SUFFIX_CLASS[suffix], (
            f"{name} is {widgets[name].get('class')}"
        )
    assert widgets["SpineLabeler"].get("class") == "qMRMLWidget"


def test_parameter_node_fields_are_bound_to_widgets_of_their_type():
    classes = {n.name: n for n in module_tree().body if isinstance(n, ast.ClassDef)}
    fields = {
        a.target.id: ast.unparse(a.annotation)
        for a in classes["SpineLabelerParameterNode"].body
        if isinstance(a, ast.AnnAssign)
    }
    bound = {}
    for widget in ui_widgets().values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget
    assert set(bound) == set(fields), "every parameter needs one widget and vice versa"
    for name, annotation in fields.items():
        widget = bound[name]
        if annotation == "bool":
            assert widget.get("class") == "QCheckBox", name
        else:
            assert (
                annotation.startswith("vtkMRML") and widget.get("class") == "qMRMLNodeComboBox"
            ), name
            node_types = [
                s.text
                for p in widget.findall("property")
                if p.get("name") == "nodeTypes"
                for s in p.iter("string")
            ]
            assert node_types == [annotation], f"{name}: nodeTypes {node_types} != {annotation}"


def test_every_mrml_widget_gets_the_scene():
    root = ET.parse(UI).getroot()
    mrml = {
        n
        for n, w in ui_widgets().items()
        if w.get("class", "").startswith("qMRML") and n != "SpineLabeler"
    }
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert mrml and mrml <= connected, f"not given the scene: {sorted(mrml - connected)}"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {
        w.get("class") for w in ui_widgets().values() if not w.get("class", "Q").startswith("Q")
    }
    assert used <= declared, f"custom widgets not declared: {sorted(used - declared)}"


def test_module_does_no_ras_lps_math_of_its_own():
    text = MODULE.read_text()
    tree = module_tree()
    # The library's conversions are what the module uses ...
    assert "image.lps_to_ras(" in text and "image.image_from_ijk_to_ras(" in text
    # ... and no axis flip, matrix product or hand-made transform of its own.
    code_lines = [line for line in text.splitlines() if not line.lstrip().startswith(("#", ">>>"))]
    for pattern in (
        "diag(",
        "[-1,",
        "[-1.",
        "* -1",
        "*-1",
        "-1.0",
        "MultiplyPoint",
        "linalg",
        "GetRASToIJK",
        "np.dot",
    ):
        assert not any(pattern in line for line in code_lines), f"module contains {pattern!r}"
    negated = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Subscript)
    ]
    assert not negated, f"coordinate negation in the module: {negated}"
    products = [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult)
    ]
    assert not products, f"matrix products in the module: {products}"


def test_module_installs_what_the_library_needs():
    """The module's pip list covers pyproject's dependencies, except what Slicer ships
    (numpy, SimpleITK, VTK) and torch (installed through the PyTorch extension)."""
    tree = module_tree()
    assignment = next(
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "PIP_REQUIREMENTS"
    )
    requirements = ast.literal_eval(assignment.value)
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {re.split(r"[<>=!~ \[]", d)[0].lower() for d in pyproject["project"]["dependencies"]}
    shipped = {"numpy", "simpleitk", "vtk", "torch"}
    assert wanted - shipped == {r.lower() for r in requirements.values()}


def test_module_cmake_lists_every_library_file_sorted_one_per_line():
    text = MODULE_CMAKE.read_text()
    lines = cmake_block(text, "SPINELABELERLIB_PYTHON_SCRIPTS")
    listed = [line.strip() for line in lines]
    assert all(line == "  " + entry for line, entry in zip(lines, listed)), (
        "one file per line, indented by two"
    )
    assert listed == sorted(listed), "keep SPINELABELERLIB_PYTHON_SCRIPTS sorted"
    actual = library_scripts()
    missing = sorted(set(actual) - set(listed))
    stale = sorted(set(listed) - set(actual))
    fix = "(or run: python Testing/test_slicer_module_static.py --update-cmake)"
    assert not missing, f"add to SpineLabeler/CMakeLists.txt {fix}:\n" + "\n".join(
        "  " + m for m in missing
    )
    assert not stale, f"remove from SpineLabeler/CMakeLists.txt {fix}:\n" + "\n".join(
        "  " + s for s in stale
    )
    # The library files join the module file in MODULE_PYTHON_SCRIPTS.
    assert cmake_block(text, "MODULE_PYTHON_SCRIPTS") == ["  ${MODULE_NAME}.py"]
    assert "foreach(script IN LISTS SPINELABELERLIB_PYTHON_SCRIPTS)" in text
    assert "list(APPEND MODULE_PYTHON_SCRIPTS ${CMAKE_CURRENT_BINARY_DIR}/${script})" in text


def test_module_cmake_lists_the_resources_and_tests():
    text = MODULE_CMAKE.read_text()
    resources = [line.strip() for line in cmake_block(text, "MODULE_PYTHON_RESOURCES")]
    assert "Resources/Icons/${MODULE_NAME}.png" in resources and ICON.is_file()
    assert "Resources/UI/${MODULE_NAME}.ui" in resources and UI.is_file()
    assert "${SPINELABELER_MODEL_FILES}" in resources
    assert (
        "${SPINELABELER_ROOT}/Resources/Models/*.pt" in text
        and "${SPINELABELER_ROOT}/Resources/Models/*.md" in text
        and "${SPINELABELER_ROOT}/Resources/Models/provenance.json" in text
    )
    assert re.search(
        r"slicerMacroBuildScriptedModule\(\s*NAME \$\{MODULE_NAME\}.*WITH_GENERIC_TESTS", text, re.S
    )
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def _extension_fields() -> dict[str, str]:
    fields = {}
    for line in S4EXT.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            fields[key] = value.strip()
    return fields


def test_top_cmake_and_s4ext_describe_the_same_extension():
    text = TOP_CMAKE.read_text()
    cmake = dict(re.findall(r'set\(EXTENSION_(\w+) "([^"]*)"\)', text))
    assert set(cmake) >= {
        "HOMEPAGE",
        "CATEGORY",
        "CONTRIBUTORS",
        "DESCRIPTION",
        "ICONURL",
        "SCREENSHOTURLS",
        "DEPENDS",
    }
    assert cmake["DEPENDS"] == "PyTorch"
    order = ["project(SpineLabeler)", "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
             "add_subdirectory(SpineLabeler)", "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
             "include(${Slicer_EXTENSION_CPACK})"]  # fmt: skip
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions), "top-level CMakeLists.txt steps out of order"

    fields = _extension_fields()
    keys = ["scm", "scmurl", "scmrevision", "depends", "build_subdirectory", "homepage", "contributors",
            "category", "iconurl", "status", "description", "screenshoturls", "enabled"]  # fmt: skip
    assert [k for k in keys if not fields.get(k)] == []
    assert fields["depends"] == "PyTorch" and fields["enabled"] == "1" and fields["scm"] == "git"
    assert fields["category"] == cmake["CATEGORY"] and fields["homepage"] == cmake["HOMEPAGE"]
    assert fields["iconurl"] == cmake["ICONURL"] and fields["description"] == cmake["DESCRIPTION"]
    assert fields["contributors"] == cmake["CONTRIBUTORS"]
    assert fields["iconurl"].endswith("Resources/Icons/SpineLabeler.png")


def test_icon_is_a_real_small_png():
    from PIL import Image

    with Image.open(ICON) as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)
        colours = icon.convert("RGBA").getcolors(maxcolors=100000)
    assert colours is not None and len(colours) > 5  # a drawing, not a blank square


# A stand-in for Slicer's CMake package: just enough to configure, build and install the
# extension and look at the installed layout. Its slicerMacroBuildScriptedModule copies
# SCRIPTS the way CTK's ctkMacroCompilePythonScript does (a relative path keeps its path
# under the module folder; an absolute path under the build folder keeps its path
# relative to the build folder).
_STUB_SLICER_CONFIG = r"""
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.6/qt-scripted-modules)
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.6/qt-scripted-modules)
set(BUILD_TESTING ON)
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  if(MY_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "unknown arguments ${MY_UNPARSED_ARGUMENTS}")
  endif()
  foreach(file IN LISTS MY_SCRIPTS MY_RESOURCES)
    if(IS_ABSOLUTE ${file})
      set(src ${file})
      file(RELATIVE_PATH rel ${CMAKE_CURRENT_BINARY_DIR} ${file})
    else()
      set(src ${CMAKE_CURRENT_SOURCE_DIR}/${file})
      set(rel ${file})
    endif()
    if(NOT EXISTS ${src})
      message(FATAL_ERROR "slicerMacroBuildScriptedModule given nonexistent file ${file}")
    endif()
    get_filename_component(dir ${rel} DIRECTORY)
    configure_file(${src} ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/${rel} COPYONLY)
    install(FILES ${src} DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/${dir})
  endforeach()
endmacro()
function(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT" "" ${ARGN})
  file(APPEND ${CMAKE_BINARY_DIR}/python_unittests.txt "${MY_SCRIPT}\n")
endfunction()
"""


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_extension_configures_and_installs_module_library_and_resources(tmp_path):
    stub = tmp_path / "slicer"
    stub.mkdir()
    (stub / "SlicerConfig.cmake").write_text(_STUB_SLICER_CONFIG)
    (stub / "empty.cmake").write_text("")
    build, prefix = tmp_path / "build", tmp_path / "install"
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="1")
    run = lambda *args: subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)  # noqa: E731
    configured = run("cmake", "-S", str(ROOT), "-B", str(build), f"-DSlicer_DIR={stub}")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    installed = run("cmake", "--install", str(build), "--prefix", str(prefix))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    modules = prefix / "lib" / "Slicer-5.6" / "qt-scripted-modules"
    assert (modules / "SpineLabeler.py").is_file()
    assert (modules / "Resources" / "UI" / "SpineLabeler.ui").is_file()
    assert (modules / "Resources" / "Icons" / "SpineLabeler.png").is_file()
    models = ROOT / "Resources" / "Models"
    shipped = sorted(
        str(f.relative_to(models)) for f in models.rglob("*") if f.suffix in (".pt", ".md", ".json")
    )
    assert "provenance.json" in shipped
    installed_models = modules / "Resources" / "Models"
    installed = [str(f.relative_to(installed_models)) for f in installed_models.rglob("*")]
    assert sorted(f for f in installed if (installed_models / f).is_file()) == shipped
    listed = [
        line.strip()
        for line in cmake_block(MODULE_CMAKE.read_text(), "SPINELABELERLIB_PYTHON_SCRIPTS")
    ]
    for script in listed:
        assert (modules / script).is_file(), f"{script} not installed next to the module"
    assert (build / "python_unittests.txt").read_text().split() == ["SpineLabeler.py"]
    # The installed library imports on its own (what PythonSlicer does in the child).
    probe = subprocess.run(
        [sys.executable, "-c", "import SpineLabelerLib.relabel, SpineLabelerLib.childjob as c; print(c.library_root())"],
        capture_output=True, text=True, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(modules)), timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()) == modules.resolve()


def update_cmake_list() -> None:
    """Rewrite SPINELABELERLIB_PYTHON_SCRIPTS from the files on disk (sorted, one per line):
    ``python Testing/test_slicer_module_static.py --update-cmake``."""
    text = MODULE_CMAKE.read_text()
    block = "\n".join("  " + f for f in library_scripts())
    new = re.sub(
        r"(set\(SPINELABELERLIB_PYTHON_SCRIPTS\n).*?(\n\s*\))",
        lambda m: m.group(1) + block + m.group(2),
        text,
        count=1,
        flags=re.S,
    )
    MODULE_CMAKE.write_text(new)
    print(f"{MODULE_CMAKE}: {len(library_scripts())} library files listed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update-cmake"]:
        update_cmake_list()
    else:
        sys.exit("usage: python Testing/test_slicer_module_static.py --update-cmake")
