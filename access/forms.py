"""Forms of the access pages; passwords go through Django's AUTH_PASSWORD_VALIDATORS."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

from access.grants import Audience
from access.models import Level, Role


class NewUserForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = forms.CharField(strip=False, widget=forms.PasswordInput)
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].initial = settings.SPYGLASS_DEFAULT_ROLE

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        # Case-insensitively, as Django's own user creation form: "Alice" beside "alice"
        # would be two people nobody can tell apart.
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise ValidationError(f"A user named {username} already exists.")
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("username") and data.get("password"):
            try:
                password_validation.validate_password(
                    data["password"], get_user_model()(username=data["username"])
                )
            except ValidationError as error:
                self.add_error("password", error)
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ActiveForm(forms.Form):
    active = forms.TypedChoiceField(choices=[("1", "active"), ("0", "inactive")],
                                    coerce=lambda value: value == "1")  # fmt: skip


class PasswordForm(forms.Form):
    password = forms.CharField(strip=False, widget=forms.PasswordInput)

    def __init__(self, user: AbstractUser, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        password_validation.validate_password(password, self.user)
        return password


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name"]


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)

    def clean_username(self) -> AbstractUser:
        username = self.cleaned_data["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise ValidationError(f"No user named {username}.")
        return user


LEVEL_CHOICES = [(level.value, level.label) for level in Level]


class LevelForm(forms.Form):
    level = forms.TypedChoiceField(choices=LEVEL_CHOICES, coerce=int)


class GrantForm(LevelForm):
    """Who (a user or a group, as `user:<pk>` / `group:<pk>`) gets which level."""

    who = forms.ChoiceField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["level"].initial = Level.READ
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["who"].choices = [
            ("", "Choose a user or a group"),
            ("Users", [(f"user:{u.pk}", u.get_username()) for u in users]),
            ("Groups", [(f"group:{g.pk}", g.name) for g in Group.objects.order_by("name")]),
        ]

    def clean_who(self) -> dict[str, Any]:
        kind, _, pk = self.cleaned_data["who"].partition(":")
        model = get_user_model() if kind == "user" else Group
        # The choice was valid when the page was drawn; the row may be gone since.
        found = model.objects.filter(pk=pk).first()
        if found is None:
            raise ValidationError("That user or group no longer exists.")
        return {kind: found}


class AudienceForm(forms.Form):
    audience = forms.ChoiceField(choices=Audience.choices)
