from django.contrib.auth.models import User
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response


class RegisterSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, min_length=8, max_length=1024)

    class Meta:
        model = User
        fields = ["id", "username", "password", "date_joined"]
        read_only_fields = ["id", "date_joined"]

    def create(self, data):
        return User.objects.create_user(username=data["username"], password=data["password"])


@api_view(["POST"])
@permission_classes([AllowAny])
def register(request):
    """201 {id, username, date_joined}; 400 for a taken or invalid username."""
    s = RegisterSerializer(data=request.data)
    s.is_valid(raise_exception=True)
    s.save()
    return Response(s.data, status=status.HTTP_201_CREATED)


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def me(request):
    u = request.user
    return Response({"id": u.id, "username": u.username, "date_joined": u.date_joined})
