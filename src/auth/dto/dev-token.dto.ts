import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional, IsString, Matches, MaxLength, MinLength } from 'class-validator';

export class DevTokenRequestDto {
  @ApiProperty({ description: 'The `sub` of the token: the owner of the jobs it creates.', example: 'alice' })
  @IsString()
  @MinLength(1)
  @MaxLength(256)
  @Matches(/^\S(.*\S)?$/, { message: 'sub must not start or end with white space' })
  sub: string;

  @ApiPropertyOptional({
    description: "Add bulk-jobs:admin (every owner's jobs) to the read and write scopes.",
    default: false,
  })
  @IsOptional()
  @IsBoolean()
  admin?: boolean;
}

export class DevTokenResponseDto {
  @ApiProperty({ description: 'The signed JWT (HS256).', example: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.…' })
  access_token: string;

  @ApiProperty({ enum: ['Bearer'], example: 'Bearer' })
  token_type: 'Bearer';

  @ApiProperty({ type: 'integer', description: 'Seconds until the token expires.', example: 3600 })
  expires_in: number;

  @ApiProperty({
    description: 'The scopes it grants, space-separated.',
    example: 'bulk-jobs:read bulk-jobs:write',
  })
  scope: string;
}
