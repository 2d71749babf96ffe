"""The contract every connector passes (Singer SDK's get_tap_test_class, as pytest mixins).

A connector's test module subclasses ``ErpSourceContract`` or ``CrmSinkContract``
and provides the fixtures named in the class docstring.
"""
